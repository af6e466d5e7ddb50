//! The canonical codec of Cairn: postcard (serde, deterministic, compact)
//! for the wire and for disk alike.
//!
//! Every decode names a byte limit and checks the input against it before
//! decoding. Within that limit postcard allocates no more than the input can
//! describe (serde caps pre-allocation of sequences), so a decode of hostile
//! bytes can fail but cannot panic or allocate without bound.

use serde::{de::DeserializeOwned, Serialize};

use crate::TypesError;

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
    match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        // postcard only fails to serialize on types serde cannot describe
        // (e.g. sequences without a length); none of ours are such.
        Err(error) => unreachable!("canonical encoding failed: {error}"),
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
