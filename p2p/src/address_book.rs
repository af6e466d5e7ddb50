//! The address book file: the peers a node knew and their addresses, kept
//! in the node's home so that a restarted node reconnects without its
//! bootstrap peers. Owns the file format (JSON), its bounds and the
//! atomic rewrite; the event loop decides what goes in and when.

use std::path::Path;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::limits::{ADDRESSES_PER_PEER_MAX, ADDRESS_BOOK_FILE_BYTES_MAX, ADDRESS_BOOK_PEERS_MAX};
use crate::Error;

/// The version written in the file; another one is not read.
pub const ADDRESS_BOOK_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFile {
    version: u32,
    peers: Vec<BookPeer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookPeer {
    peer: String,
    addresses: Vec<String>,
}

/// Reads the address book at `path`: at most [`ADDRESS_BOOK_PEERS_MAX`]
/// peers with at most [`ADDRESSES_PER_PEER_MAX`] addresses each. A missing
/// file is an empty book; entries that do not parse are skipped.
pub fn load(path: &Path) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, Error> {
    let io_error = |source: std::io::Error| Error::AddressBook {
        path: path.display().to_string(),
        reason: source.to_string(),
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(error)),
    };
    if metadata.len() > ADDRESS_BOOK_FILE_BYTES_MAX as u64 {
        return Err(Error::AddressBook {
            path: path.display().to_string(),
            reason: format!(
                "the file is {} bytes, the limit is {ADDRESS_BOOK_FILE_BYTES_MAX}",
                metadata.len()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io_error)?;
    parse(&text).map_err(|reason| Error::AddressBook {
        path: path.display().to_string(),
        reason,
    })
}

/// Parses the text of an address book file.
fn parse(text: &str) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, String> {
    let file: BookFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != ADDRESS_BOOK_VERSION {
        return Err(format!(
            "version {} is not the {ADDRESS_BOOK_VERSION} this node reads",
            file.version
        ));
    }
    Ok(file
        .peers
        .iter()
        .take(ADDRESS_BOOK_PEERS_MAX)
        .filter_map(|entry| {
            let peer = entry.peer.parse::<PeerId>().ok()?;
            let addresses: Vec<Multiaddr> = entry
                .addresses
                .iter()
                .filter_map(|text| text.parse().ok())
                .take(ADDRESSES_PER_PEER_MAX)
                .collect();
            (!addresses.is_empty()).then_some((peer, addresses))
        })
        .collect())
}

/// Writes `peers` (the first [`ADDRESS_BOOK_PEERS_MAX`]) to `path`
/// through a temporary file and a rename, so a crash leaves the old book
/// or the new one.
pub fn save(path: &Path, peers: &[(PeerId, Vec<Multiaddr>)]) -> Result<(), Error> {
    let io_error = |source: std::io::Error| Error::AddressBook {
        path: path.display().to_string(),
        reason: source.to_string(),
    };
    let text = render(peers);
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text).map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)
}

fn render(peers: &[(PeerId, Vec<Multiaddr>)]) -> String {
    let file = BookFile {
        version: ADDRESS_BOOK_VERSION,
        peers: peers
            .iter()
            .filter(|(_, addresses)| !addresses.is_empty())
            .take(ADDRESS_BOOK_PEERS_MAX)
            .map(|(peer, addresses)| BookPeer {
                peer: peer.to_string(),
                addresses: addresses
                    .iter()
                    .take(ADDRESSES_PER_PEER_MAX)
                    .map(ToString::to_string)
                    .collect(),
            })
            .collect(),
    };
    // Strings and numbers only: serialization cannot fail.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        crate::generate_keypair().public().to_peer_id()
    }

    #[test]
    fn a_saved_book_reads_back_and_stays_bounded() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("address_book.json");
        assert!(load(&path).unwrap().is_empty(), "a missing file is empty");
        let many_addresses: Vec<Multiaddr> = (0..20)
            .map(|port| format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap())
            .collect();
        let peers: Vec<_> = (0..ADDRESS_BOOK_PEERS_MAX + 10)
            .map(|_| (peer(), many_addresses.clone()))
            .collect();
        save(&path, &peers).unwrap();
        let read = load(&path).unwrap();
        assert_eq!(read.len(), ADDRESS_BOOK_PEERS_MAX);
        assert_eq!(read[0].0, peers[0].0);
        assert_eq!(read[0].1.len(), ADDRESSES_PER_PEER_MAX);
        assert_eq!(read[0].1[0], many_addresses[0]);
    }

    #[test]
    fn a_bad_book_is_refused_with_the_reason() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("address_book.json");
        std::fs::write(&path, "not json").unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("address_book.json"), "{error}");
        std::fs::write(&path, r#"{"version":9,"peers":[]}"#).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("version 9"), "{error}");
        std::fs::write(&path, vec![b' '; ADDRESS_BOOK_FILE_BYTES_MAX + 1]).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("limit"), "{error}");
        // Entries that do not parse are skipped, the rest kept.
        let good = peer();
        std::fs::write(
            &path,
            format!(
                r#"{{"version":1,"peers":[{{"peer":"x","addresses":["/ip4/1.2.3.4/tcp/1"]}},{{"peer":"{good}","addresses":["nonsense","/ip4/10.0.0.2/tcp/26656"]}}]}}"#
            ),
        )
        .unwrap();
        let read = load(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, good);
        assert_eq!(read[0].1.len(), 1);
    }
}
