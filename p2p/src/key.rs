//! The persistent node key: an ed25519 keypair whose public half is the
//! node's `PeerId`. The node crate chooses the file; this module generates,
//! encodes (JSON with the hex secret, or raw 32 bytes), loads and saves it.

use std::path::Path;

use libp2p::identity::Keypair;
use serde::{Deserialize, Serialize};

use crate::limits::KEY_FILE_BYTES_MAX;
use crate::Error;

/// The key-type tag written in key files.
pub const KEY_TYPE_ED25519: &str = "ed25519";

/// The JSON shape of a node key file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// Always [`KEY_TYPE_ED25519`].
    #[serde(rename = "type")]
    key_type: String,
    /// Hex of the 32-byte ed25519 secret.
    secret_key: String,
    /// The peer id, for people reading the file; checked on load.
    peer_id: String,
}

/// A fresh random ed25519 node key.
pub fn generate_keypair() -> Keypair {
    Keypair::generate_ed25519()
}

/// The 32 secret bytes of an ed25519 node key.
pub fn keypair_to_bytes(keypair: &Keypair) -> Result<[u8; 32], Error> {
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|e| Error::BadKey(format!("only ed25519 node keys are supported: {e}")))?;
    let mut out = [0u8; 32];
    out.copy_from_slice(ed.secret().as_ref());
    Ok(out)
}

/// The node key from its 32 secret bytes.
pub fn keypair_from_bytes(secret: &[u8]) -> Result<Keypair, Error> {
    if secret.len() != 32 {
        return Err(Error::BadKey(format!(
            "an ed25519 secret is 32 bytes, got {}",
            secret.len()
        )));
    }
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(secret);
    Keypair::ed25519_from_bytes(bytes).map_err(|e| Error::BadKey(e.to_string()))
}

/// The JSON text of a node key file.
pub fn keypair_to_json(keypair: &Keypair) -> Result<String, Error> {
    let file = KeyFile {
        key_type: KEY_TYPE_ED25519.to_string(),
        secret_key: hex::encode(keypair_to_bytes(keypair)?),
        peer_id: keypair.public().to_peer_id().to_string(),
    };
    serde_json::to_string_pretty(&file).map_err(|e| Error::BadKey(e.to_string()))
}

/// The node key from the JSON text of a key file.
pub fn keypair_from_json(text: &str) -> Result<Keypair, Error> {
    if text.len() > KEY_FILE_BYTES_MAX {
        return Err(Error::TooLarge {
            what: "node key file",
            size: text.len(),
            limit: KEY_FILE_BYTES_MAX,
        });
    }
    let file: KeyFile = serde_json::from_str(text).map_err(|e| Error::Decode {
        what: "node key file",
        reason: e.to_string(),
    })?;
    if file.key_type != KEY_TYPE_ED25519 {
        return Err(Error::BadKey(format!(
            "key type {:?} is not supported; use {KEY_TYPE_ED25519:?}",
            file.key_type
        )));
    }
    let secret = hex::decode(file.secret_key.trim()).map_err(|e| Error::Decode {
        what: "node key secret (hex)",
        reason: e.to_string(),
    })?;
    let keypair = keypair_from_bytes(&secret)?;
    let peer_id = keypair.public().to_peer_id().to_string();
    if peer_id != file.peer_id {
        return Err(Error::BadKey(format!(
            "the file names peer id {} but its secret belongs to {peer_id}; fix or delete the file",
            file.peer_id
        )));
    }
    Ok(keypair)
}

/// Writes the node key to `path` as JSON, readable by the owner only.
pub fn save_keypair(path: &Path, keypair: &Keypair) -> Result<(), Error> {
    let text = keypair_to_json(keypair)?;
    let io = |source| Error::KeyFile {
        path: path.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, text).map_err(io)?;
    Ok(())
}

/// Reads the node key from the JSON file at `path`.
pub fn load_keypair(path: &Path) -> Result<Keypair, Error> {
    let io = |source| Error::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > KEY_FILE_BYTES_MAX as u64 {
        return Err(Error::TooLarge {
            what: "node key file",
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: KEY_FILE_BYTES_MAX,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    keypair_from_json(&text)
}

/// Loads the key at `path`, or generates and saves one if the file does not
/// exist.
pub fn load_or_generate_keypair(path: &Path) -> Result<Keypair, Error> {
    if path.exists() {
        load_keypair(path)
    } else {
        let keypair = generate_keypair();
        save_keypair(path, &keypair)?;
        Ok(keypair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_the_peer_id() {
        let key = generate_keypair();
        let text = keypair_to_json(&key).unwrap();
        let back = keypair_from_json(&text).unwrap();
        assert_eq!(key.public().to_peer_id(), back.public().to_peer_id());
    }

    #[test]
    fn file_round_trip_and_bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_key.json");
        let key = load_or_generate_keypair(&path).unwrap();
        let again = load_or_generate_keypair(&path).unwrap();
        assert_eq!(key.public().to_peer_id(), again.public().to_peer_id());
        assert!(keypair_from_json("{}").is_err());
        assert!(keypair_from_bytes(&[1, 2, 3]).is_err());
        let long = "x".repeat(KEY_FILE_BYTES_MAX + 1);
        assert!(matches!(
            keypair_from_json(&long),
            Err(Error::TooLarge { .. })
        ));
    }
}
