//! SHA-256 hashes and the serde shape shared by every fixed-size byte string.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::TypesError;

/// A SHA-256 digest: block hashes, transaction hashes, Merkle roots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used where there is nothing to hash (the parent of
    /// the first block, the certificate of the genesis).
    pub const ZERO: Hash = Hash([0; 32]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (an optional `0x` prefix is accepted).
    pub fn from_hex(input: &str) -> Result<Self, TypesError> {
        parse_hex_array::<32>("hash", input).map(Hash)
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash {
    Hash(Sha256::digest(bytes).into())
}

/// SHA-256 of the concatenation of `parts`, without copying them together.
pub fn sha256_parts(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    Hash(hasher.finalize().into())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..12])
    }
}

impl std::str::FromStr for Hash {
    type Err = TypesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s)
    }
}

/// Parses `N` bytes of hex, with an optional `0x` prefix.
pub(crate) fn parse_hex_array<const N: usize>(
    what: &'static str,
    input: &str,
) -> Result<[u8; N], TypesError> {
    let trimmed = input.strip_prefix("0x").unwrap_or(input);
    let mut out = [0u8; N];
    hex::decode_to_slice(trimmed, &mut out).map_err(|error| TypesError::BadHex {
        what,
        reason: error.to_string(),
        expected_len: N * 2,
    })?;
    Ok(out)
}

/// Implements serde for a newtype over `[u8; N]`: hex text in human-readable
/// formats (JSON), a length-prefixed byte string in the binary codec.
macro_rules! fixed_bytes_serde {
    ($type:ident, $len:expr, $what:expr) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&hex::encode(&self.0))
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct FixedVisitor;
                impl<'de> serde::de::Visitor<'de> for FixedVisitor {
                    type Value = $type;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{} bytes of {}", $len, $what)
                    }
                    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<$type, E> {
                        $crate::hash::parse_hex_array::<$len>($what, value)
                            .map($type)
                            .map_err(E::custom)
                    }
                    fn visit_bytes<E: serde::de::Error>(self, value: &[u8]) -> Result<$type, E> {
                        <[u8; $len]>::try_from(value)
                            .map($type)
                            .map_err(|_| E::invalid_length(value.len(), &self))
                    }
                }
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(FixedVisitor)
                } else {
                    deserializer.deserialize_bytes(FixedVisitor)
                }
            }
        }
    };
}
pub(crate) use fixed_bytes_serde;

fixed_bytes_serde!(Hash, 32, "hash");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_matches_the_standard() {
        assert_eq!(
            sha256(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256_parts(&[b"ab", b"c"]), sha256(b"abc"));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let hash = sha256(b"cairn");
        assert_eq!(Hash::from_hex(&hash.to_hex()), Ok(hash));
        assert_eq!(Hash::from_hex(&format!("0x{}", hash.to_hex())), Ok(hash));
        assert!(Hash::from_hex("abc").is_err());
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{}\"", hash.to_hex()));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), hash);
    }
}
