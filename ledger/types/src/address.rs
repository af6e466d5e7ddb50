//! Account addresses: the first 20 bytes of SHA-256 of an ed25519 public
//! key, shown to people as bech32m with the human-readable prefix `cairn`.

use std::fmt;

use bech32::{Bech32m, Hrp};

use crate::{crypto::PublicKey, hash::fixed_bytes_serde, sha256, TypesError};

/// The bech32m human-readable prefix of addresses.
pub const ADDRESS_PREFIX: &str = "cairn";

/// An account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of the account controlled by `public_key`.
    pub fn from_public_key(public_key: &PublicKey) -> Address {
        let digest = sha256(&public_key.0);
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest.0[..20]);
        Address(bytes)
    }

    /// The bech32m form, `cairn1...`.
    pub fn to_bech32(&self) -> String {
        let hrp = Hrp::parse_unchecked(ADDRESS_PREFIX);
        match bech32::encode::<Bech32m>(hrp, &self.0) {
            Ok(text) => text,
            // 20 bytes under a 5-letter prefix are far below bech32's
            // 90-character limit, the only reason encoding can fail.
            Err(error) => unreachable!("bech32m encoding of 20 bytes failed: {error}"),
        }
    }

    /// Parses a bech32m `cairn1...` address, with errors naming what is
    /// wrong (checksum, prefix, variant or length).
    pub fn from_bech32(input: &str) -> Result<Address, TypesError> {
        let bad = |reason: String| TypesError::BadAddress {
            input: input.to_string(),
            reason,
        };
        // The prefix is judged before the checksum: an address of another
        // chain (`0x...`, `cosmos1...`) is a wrong prefix, not a typo.
        let prefix_ok = input
            .rfind('1')
            .is_some_and(|separator| input[..separator].eq_ignore_ascii_case(ADDRESS_PREFIX));
        if !prefix_ok {
            return Err(bad(
                "wrong prefix: Cairn addresses start with cairn1".to_string()
            ));
        }
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(input)
            .map_err(|error| bad(format!("{error} (check for a typo)")))?;
        let prefix = checked.hrp();
        if !prefix.as_str().eq_ignore_ascii_case(ADDRESS_PREFIX) {
            return Err(bad(
                "wrong prefix: Cairn addresses start with cairn1".to_string()
            ));
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 20] = data
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("it holds {} bytes, expected 20", data.len())))?;
        Ok(Address(bytes))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_bech32())
    }
}

impl std::str::FromStr for Address {
    type Err = TypesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::from_bech32(s)
    }
}

// In JSON an address is its bech32m text; in the binary codec, 20 bytes.
impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_bech32())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Address::from_bech32(&text).map_err(serde::de::Error::custom)
        } else {
            RawAddress::deserialize(deserializer).map(|raw| Address(raw.0))
        }
    }
}

/// The binary form of an address, deserialized through the shared macro.
struct RawAddress([u8; 20]);
fixed_bytes_serde!(RawAddress, 20, "address");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32m_round_trip() {
        let address = Address([7; 20]);
        let text = address.to_bech32();
        assert!(text.starts_with("cairn1"));
        assert_eq!(Address::from_bech32(&text), Ok(address));
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), address);
    }

    #[test]
    fn bad_checksum_is_named() {
        let mut text = Address([7; 20]).to_bech32();
        let last = text.pop().unwrap();
        text.push(if last == 'q' { 'p' } else { 'q' });
        let error = Address::from_bech32(&text).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
    }

    #[test]
    fn wrong_prefix_is_named() {
        let hrp = Hrp::parse("other").unwrap();
        let text = bech32::encode::<Bech32m>(hrp, &[1u8; 20]).unwrap();
        let error = Address::from_bech32(&text).unwrap_err().to_string();
        assert!(error.contains("prefix"), "{error}");
    }

    #[test]
    fn addresses_of_other_chains_name_the_prefix() {
        let cosmos =
            bech32::encode::<bech32::Bech32>(Hrp::parse("cosmos").unwrap(), &[1u8; 20]).unwrap();
        for text in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            cosmos.as_str(),
            "cairn",
            "",
        ] {
            let error = Address::from_bech32(text).unwrap_err().to_string();
            assert!(
                error.contains("wrong prefix: Cairn addresses start with cairn1"),
                "{text}: {error}"
            );
            assert!(!error.contains("checksum"), "{text}: {error}");
        }
        // Upper-case bech32 keeps its prefix.
        let upper = Address([7; 20]).to_bech32().to_uppercase();
        assert_eq!(Address::from_bech32(&upper), Ok(Address([7; 20])));
    }

    #[test]
    fn bech32_without_m_is_refused() {
        let hrp = Hrp::parse("cairn").unwrap();
        let text = bech32::encode::<bech32::Bech32>(hrp, &[1u8; 20]).unwrap();
        assert!(Address::from_bech32(&text).is_err());
    }
}
