//! The keyring: a directory (mode 0700) of key files (mode 0600), one per
//! named key, `NAME.json`. Keys are created from the operating system's
//! randomness, imported from a secret seed, listed, shown, exported and
//! deleted; with a passphrase their seeds are encrypted at rest (see
//! [`crate::keyfile`]).
//!
//! The default directory is `$XDG_DATA_HOME/cairn/keys` or `~/.cairn-keys`,
//! apart from the node home `~/.cairn` (see [`default_dir_from`]); the old
//! default `~/.cairn/keys` is still read while the new one does not exist.
//!
//! The devnet command imports the keys it funds with
//! [`Keyring::import_all`].

use std::{
    fmt,
    fs::{self, DirBuilder, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use cairn_types::{Address, Keypair, PublicKey};
use serde::Serialize;

use crate::{
    error::{CliError, Result},
    keyfile::{KeyFile, Passphrase},
    limits::{KEYRING_KEYS_MAX, KEY_NAME_BYTES_MAX},
};

/// File name extension of key files.
const KEY_FILE_EXTENSION: &str = "json";

/// Permission bits of the keyring directory.
const KEYRING_DIR_MODE: u32 = 0o700;

/// Permission bits of key files.
const KEY_FILE_MODE: u32 = 0o600;

/// A key name: 1 to [`KEY_NAME_BYTES_MAX`] bytes of ASCII letters, digits,
/// `-`, `_` and `.`, starting with a letter or a digit (so it is a safe
/// file name and never a flag).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// Checks `name` against the rules.
    pub fn new(name: &str) -> Result<KeyName> {
        let bad = |reason: String| CliError::BadKeyName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("it is empty".to_string()));
        }
        if name.len() > KEY_NAME_BYTES_MAX {
            return Err(bad(format!(
                "it is {} bytes long, the limit is {KEY_NAME_BYTES_MAX}",
                name.len()
            )));
        }
        if let Some(character) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(bad(format!(
                "character {character:?} is not allowed; use letters, digits, '-', '_' and '.'"
            )));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("it must start with a letter or a digit".to_string()));
        }
        Ok(KeyName(name.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyName {
    type Err = CliError;
    fn from_str(s: &str) -> Result<Self> {
        KeyName::new(s)
    }
}

/// What a person or a script may know about a key without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// The account address, `cairn1...`.
    #[serde(serialize_with = "serialize_display")]
    pub address: Address,
    /// The ed25519 public key (hex).
    #[serde(serialize_with = "serialize_display")]
    pub public_key: PublicKey,
    /// Whether the secret is encrypted with a passphrase.
    pub encrypted: bool,
    /// The key file.
    pub path: PathBuf,
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// What [`Keyring::import_all`] does when a name is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingKey {
    /// Refuse the whole import (nothing is written).
    Refuse,
    /// Keep the existing key if it is the same key (same public key), and
    /// refuse if it is another one. Lets a devnet that resumes import its
    /// keys again.
    KeepIfSame,
}

/// A keyring directory.
#[derive(Clone, Debug)]
pub struct Keyring {
    dir: PathBuf,
}

/// The default keyring directory, as [`default_dir_from`] chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultDir {
    /// The directory to use.
    pub dir: PathBuf,
    /// Set when `dir` is the old default `~/.cairn/keys` (inside the node
    /// home), used because the new default does not exist yet: where the
    /// keys should move to.
    pub move_to: Option<PathBuf>,
}

/// The default keyring directory for the given `HOME` and
/// `XDG_DATA_HOME`: `$XDG_DATA_HOME/cairn/keys` when that variable holds
/// an absolute path, else `~/.cairn-keys`; outside the node home
/// `~/.cairn`, so `rm -r ~/.cairn` (or a node reset) never takes keys
/// with it. When the new directory does not exist but the old default
/// `~/.cairn/keys` does, the old one is used, so no key goes missing.
pub fn default_dir_from(
    home: Option<&std::ffi::OsStr>,
    xdg_data_home: Option<&std::ffi::OsStr>,
) -> Result<DefaultDir> {
    let home = home
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or(CliError::NoKeyringDir)?;
    let new = match xdg_data_home.map(PathBuf::from) {
        Some(data) if data.is_absolute() => data.join("cairn").join("keys"),
        _ => home.join(".cairn-keys"),
    };
    let old = home.join(".cairn").join("keys");
    if !new.exists() && old.is_dir() {
        return Ok(DefaultDir {
            dir: old,
            move_to: Some(new),
        });
    }
    Ok(DefaultDir {
        dir: new,
        move_to: None,
    })
}

impl Keyring {
    /// The default keyring directory (see [`default_dir_from`]), from the
    /// environment. Using the old default prints a note on standard error
    /// that says how to move the keys.
    pub fn default_dir() -> Result<PathBuf> {
        let home = std::env::var_os("HOME");
        let data = std::env::var_os("XDG_DATA_HOME");
        let chosen = default_dir_from(home.as_deref(), data.as_deref())?;
        if let Some(new) = &chosen.move_to {
            eprintln!(
                "note: using the keyring in {old}, the old default inside the node home; move it out with `mkdir -p {parent} && mv {old} {new}` (or pass --keyring-dir)",
                old = chosen.dir.display(),
                parent = new.parent().unwrap_or(new).display(),
                new = new.display()
            );
        }
        Ok(chosen.dir)
    }

    /// The keyring in `dir`. Nothing is created until a key is written.
    pub fn new(dir: impl Into<PathBuf>) -> Keyring {
        Keyring { dir: dir.into() }
    }

    /// The keyring directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the key `name`.
    pub fn path_of(&self, name: &KeyName) -> PathBuf {
        self.dir
            .join(format!("{}.{KEY_FILE_EXTENSION}", name.as_str()))
    }

    /// Creates a key from the operating system's randomness.
    pub fn create(&self, name: &KeyName, passphrase: Option<&Passphrase>) -> Result<KeyInfo> {
        let keypair = cairn_genesis::devnet::generate_keypair();
        self.import(name, &keypair, passphrase)
    }

    /// Stores `keypair` under `name`; refuses to overwrite an existing key.
    pub fn import(
        &self,
        name: &KeyName,
        keypair: &Keypair,
        passphrase: Option<&Passphrase>,
    ) -> Result<KeyInfo> {
        let path = self.path_of(name);
        if path.exists() {
            return Err(CliError::KeyExists {
                name: name.to_string(),
                path,
            });
        }
        let file = KeyFile::seal(path, name.as_str(), keypair, passphrase)?;
        self.write_new(&file, name)?;
        Ok(info_of(name.as_str(), &file))
    }

    /// Imports many keys at once (the devnet's funded accounts). Every
    /// name is checked before anything is written; with
    /// [`ExistingKey::Refuse`] a taken name refuses the whole import, with
    /// [`ExistingKey::KeepIfSame`] a name holding the same public key is
    /// kept as it is. Returns the keys in the order given.
    pub fn import_all(
        &self,
        keys: &[(KeyName, Keypair)],
        passphrase: Option<&Passphrase>,
        existing: ExistingKey,
    ) -> Result<Vec<KeyInfo>> {
        let mut to_write = Vec::with_capacity(keys.len());
        let mut infos = Vec::with_capacity(keys.len());
        for (name, keypair) in keys {
            let path = self.path_of(name);
            if path.exists() {
                let current = self.show(name)?;
                if existing == ExistingKey::KeepIfSame && current.public_key == keypair.public_key()
                {
                    infos.push(Some(current));
                    continue;
                }
                return Err(CliError::KeyExists {
                    name: name.to_string(),
                    path,
                });
            }
            to_write.push((name, keypair));
            infos.push(None);
        }
        let mut written = to_write
            .into_iter()
            .map(|(name, keypair)| self.import(name, keypair, passphrase))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        infos
            .into_iter()
            .map(|info| match info {
                Some(info) => Ok(info),
                None => written.next().ok_or_else(|| CliError::CorruptKeyFile {
                    path: self.dir.clone(),
                    reason: "internal error: an imported key went missing".to_string(),
                }),
            })
            .collect()
    }

    /// All keys, sorted by name. A missing directory is an empty keyring.
    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for name in self.names()? {
            keys.push(self.show(&name)?);
        }
        Ok(keys)
    }

    /// The names of all keys, sorted.
    pub fn names(&self) -> Result<Vec<KeyName>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(CliError::io("list", &self.dir)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(CliError::io("list", &self.dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(KEY_FILE_EXTENSION) {
                continue;
            }
            let Some(name) = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| KeyName::new(stem).ok())
            else {
                continue;
            };
            if names.len() >= KEYRING_KEYS_MAX {
                return Err(CliError::io("list", &self.dir)(std::io::Error::other(
                    format!("more than {KEYRING_KEYS_MAX} keys"),
                )));
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    /// The public part of the key `name`.
    pub fn show(&self, name: &KeyName) -> Result<KeyInfo> {
        let file = self.read(name)?;
        Ok(info_of(name.as_str(), &file))
    }

    /// The keypair of `name`, opened with `passphrase` if it is encrypted.
    /// Refuses a key file other users can read.
    pub fn keypair(&self, name: &KeyName, passphrase: Option<&Passphrase>) -> Result<Keypair> {
        let file = self.read(name)?;
        let mode = fs::metadata(file.path())
            .map_err(CliError::io("read", file.path()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CliError::InsecureKeyFile {
                path: file.path().to_path_buf(),
                mode: mode & 0o777,
            });
        }
        file.keypair(passphrase)
    }

    /// Deletes the key `name`; returns what it was.
    pub fn delete(&self, name: &KeyName) -> Result<KeyInfo> {
        let info = match self.show(name) {
            Ok(info) => info,
            // A corrupted file can still be deleted.
            Err(CliError::CorruptKeyFile { path, .. }) => KeyInfo {
                name: name.to_string(),
                address: Address::default(),
                public_key: PublicKey::default(),
                encrypted: false,
                path,
            },
            Err(error) => return Err(error),
        };
        fs::remove_file(&info.path).map_err(CliError::io("delete", &info.path))?;
        Ok(info)
    }

    fn read(&self, name: &KeyName) -> Result<KeyFile> {
        let path = self.path_of(name);
        if !path.exists() {
            return Err(self.unknown(name));
        }
        KeyFile::read(&path)
    }

    fn unknown(&self, name: &KeyName) -> CliError {
        let known = match self.names() {
            Ok(names) if names.is_empty() => format!(
                "the keyring is empty; create a key with `cairn keys new {name}` or pass --keyring-dir"
            ),
            Ok(names) => format!(
                "known keys: {}",
                names
                    .iter()
                    .map(KeyName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(error) => format!("the keyring cannot be listed: {error}"),
        };
        CliError::UnknownKey {
            name: name.to_string(),
            dir: self.dir.clone(),
            known,
        }
    }

    /// Creates the keyring directory (0700) if it is missing, and takes
    /// group and other permissions off an existing one.
    fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            let mode = fs::metadata(&self.dir)
                .map_err(CliError::io("read", &self.dir))?
                .permissions()
                .mode();
            if mode & 0o077 == 0 {
                return Ok(());
            }
            return fs::set_permissions(&self.dir, fs::Permissions::from_mode(KEYRING_DIR_MODE))
                .map_err(CliError::io(
                    "make the keyring directory private (chmod 700)",
                    &self.dir,
                ));
        }
        DirBuilder::new()
            .recursive(true)
            .mode(KEYRING_DIR_MODE)
            .create(&self.dir)
            .map_err(CliError::io("create the keyring directory", &self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(KEYRING_DIR_MODE))
            .map_err(CliError::io("set permissions of", &self.dir))
    }

    /// Writes `file` to a temporary file (0600, synced), then links it to
    /// its final name, which fails if the name is taken: a key is never
    /// overwritten and never half-written.
    fn write_new(&self, file: &KeyFile, name: &KeyName) -> Result<()> {
        self.ensure_dir()?;
        let text = file.to_json()?;
        let final_path = file.path();
        let temporary_path =
            self.dir
                .join(format!(".{}.{}.tmp", name.as_str(), std::process::id()));
        let result = (|| {
            let mut handle = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(KEY_FILE_MODE)
                .open(&temporary_path)
                .map_err(CliError::io("create", &temporary_path))?;
            handle
                .write_all(text.as_bytes())
                .and_then(|()| handle.sync_all())
                .map_err(CliError::io("write", &temporary_path))?;
            fs::hard_link(&temporary_path, final_path).map_err(|error| {
                if error.kind() == std::io::ErrorKind::AlreadyExists {
                    CliError::KeyExists {
                        name: name.to_string(),
                        path: final_path.to_path_buf(),
                    }
                } else {
                    CliError::io("create", final_path)(error)
                }
            })
        })();
        let _ = fs::remove_file(&temporary_path);
        result?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn info_of(name: &str, file: &KeyFile) -> KeyInfo {
    KeyInfo {
        name: name.to_string(),
        address: file.address(),
        public_key: file.public_key(),
        encrypted: file.is_encrypted(),
        path: file.path().to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dir_is_outside_the_node_home() {
        let home = tempfile::tempdir().unwrap();
        let home_os = home.path().as_os_str();
        let chosen = default_dir_from(Some(home_os), None).unwrap();
        assert_eq!(chosen.dir, home.path().join(".cairn-keys"));
        assert_eq!(chosen.move_to, None);
        let data = home.path().join("data");
        let chosen = default_dir_from(Some(home_os), Some(data.as_os_str())).unwrap();
        assert_eq!(chosen.dir, data.join("cairn").join("keys"));
        // A relative XDG_DATA_HOME is ignored, as the spec says.
        let chosen = default_dir_from(Some(home_os), Some("rel".as_ref())).unwrap();
        assert_eq!(chosen.dir, home.path().join(".cairn-keys"));
        assert!(matches!(
            default_dir_from(None, None),
            Err(CliError::NoKeyringDir)
        ));

        // The old default is read while the new one does not exist.
        let old = home.path().join(".cairn").join("keys");
        fs::create_dir_all(&old).unwrap();
        let chosen = default_dir_from(Some(home_os), None).unwrap();
        assert_eq!(chosen.dir, old);
        assert_eq!(chosen.move_to, Some(home.path().join(".cairn-keys")));
        fs::create_dir_all(home.path().join(".cairn-keys")).unwrap();
        let chosen = default_dir_from(Some(home_os), None).unwrap();
        assert_eq!(chosen.dir, home.path().join(".cairn-keys"));
    }
}
