//! The canonical codec of Cairn: postcard (serde, deterministic, compact)
//! for the wire and for disk alike.
//!
//! Every decode names a byte limit and checks the input against it before
//! decoding. Within that limit postcard allocates no more than the input can
//! describe (serde caps pre-allocation of sequences), so a decode of hostile
//! bytes can fail but cannot panic or allocate without bound.

use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use crate::{Hash, TypesError};

/// The length of [`encode`]'s bytes for `value`, counted without
/// encoding it (it cannot fail, for the reason [`encode`] gives).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    match postcard::experimental::serialized_size(value) {
        Ok(len) => len,
        Err(error) => unreachable!("canonical encoding failed: {error}"),
    }
}

/// Encodes `value` in the canonical format.
///
/// Encoding a value made of this crate's types cannot fail: they contain no
/// maps with non-string keys and no unsized sequences.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    encode_into(value, Vec::with_capacity(ENCODE_CAPACITY_FIRST))
}

/// What [`encode`] reserves before it starts: most values of the hot path
/// (transactions, votes, headers) fit, so they take one allocation instead
/// of a growing buffer's five or six.
const ENCODE_CAPACITY_FIRST: usize = 256;

/// Appends the canonical encoding of `value` to `bytes` and returns them.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, bytes: Vec<u8>) -> Vec<u8> {
    match postcard::to_extend(value, bytes) {
        Ok(bytes) => bytes,
        // postcard only fails to serialize on types serde cannot describe
        // (e.g. sequences without a length); none of ours are such.
        Err(error) => unreachable!("canonical encoding failed: {error}"),
    }
}

/// SHA-256 of [`encode`]'s bytes for `value`, fed to the hash as they are
/// produced (no buffer).
pub fn sha256_of_encoding<T: Serialize + ?Sized>(value: &T) -> Hash {
    match postcard::serialize_with_flavor(value, HashingFlavor(Sha256::new())) {
        Ok(hash) => hash,
        Err(error) => unreachable!("canonical encoding failed: {error}"),
    }
}

/// A postcard output that hashes what it is given.
struct HashingFlavor(Sha256);

impl postcard::ser_flavors::Flavor for HashingFlavor {
    type Output = Hash;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update([data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Hash> {
        Ok(Hash(self.0.finalize().into()))
    }
}

/// Decodes a `T` from `bytes`, refusing inputs longer than `bytes_max` and
/// inputs with trailing bytes (so every value has exactly one encoding).
pub fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    bytes_max: usize,
) -> Result<T, TypesError> {
    if bytes.len() > bytes_max {
        return Err(TypesError::TooLarge {
            what,
            len: bytes.len(),
            max: bytes_max,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|error| TypesError::Malformed {
            what,
            reason: error.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(TypesError::Malformed {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_encoding() {
        let long: Vec<u64> = (0..1000).map(|i| i * 0x0101_0101).collect();
        let values: Vec<(&str, Vec<u8>, Hash)> = vec![
            ("empty", encode(&()), sha256_of_encoding(&())),
            ("byte", encode(&7u8), sha256_of_encoding(&7u8)),
            (
                "string",
                encode("cairn-chain"),
                sha256_of_encoding("cairn-chain"),
            ),
            ("long", encode(&long), sha256_of_encoding(&long)),
        ];
        for (what, bytes, hash) in values {
            assert_eq!(hash, crate::sha256(&bytes), "{what}");
        }
    }

    #[test]
    fn encode_into_appends() {
        let bytes = encode_into(&300u32, b"tag".to_vec());
        assert_eq!(&bytes[..3], b"tag");
        assert_eq!(&bytes[3..], encode(&300u32).as_slice());
    }
}
