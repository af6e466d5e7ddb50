//! One key file: its JSON format, and the encryption of the secret seed at
//! rest.
//!
//! A key file is JSON:
//!
//! ```json
//! { "version": 1, "name": "alice", "address": "cairn1...", "public_key": "<hex>",
//!   "secret": { "kind": "plain", "seed": "<64 hex>" } }
//! ```
//!
//! or, with a passphrase, `"secret": { "kind": "argon2id_xchacha20poly1305",
//! "salt", "nonce", "memory_kib", "iterations", "parallelism", "ciphertext" }`:
//! the seed is encrypted with XChaCha20-Poly1305 under a key derived from
//! the passphrase by Argon2id (version 0x13) with a random 16-byte salt and
//! a random 24-byte nonce. The associated data binds the ciphertext to the
//! file's public key, so a file whose public key was edited fails to open
//! instead of signing with a key other than the one it shows. The address
//! and public key stay readable without the passphrase (`keys list` and
//! `keys show` need none).

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use cairn_types::{Address, Keypair, PublicKey};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    error::{CliError, Result},
    files::read_bounded,
    limits::{
        KDF_ITERATIONS, KDF_ITERATIONS_MAX, KDF_MEMORY_KIB, KDF_MEMORY_KIB_MAX, KDF_PARALLELISM,
        KDF_PARALLELISM_MAX, KEY_FILE_BYTES_MAX, PASSPHRASE_BYTES_MAX,
    },
};

/// The version written into new key files, and the only one read.
pub const KEY_FILE_VERSION: u32 = 1;

/// Domain tag at the start of the associated data of an encrypted seed.
const ENCRYPTION_DOMAIN: &[u8] = b"cairn/key-file/v1\0";

/// Bytes of the Argon2id salt.
const SALT_BYTES: usize = 16;

/// Bytes of the XChaCha20-Poly1305 nonce.
const NONCE_BYTES: usize = 24;

/// Bytes of a secret seed.
const SEED_BYTES: usize = 32;

/// A passphrase, zeroed when dropped. Never taken from a command-line flag
/// value (it would show in `ps` and in shell history).
pub struct Passphrase {
    bytes: Zeroizing<Vec<u8>>,
}

impl Passphrase {
    /// A passphrase from its bytes; `source_name` says where it came from,
    /// for error messages. Empty or over-long passphrases are refused.
    pub fn new(bytes: Zeroizing<Vec<u8>>, source_name: &str) -> Result<Passphrase> {
        let bad = |reason: String| CliError::BadPassphrase {
            source_name: source_name.to_string(),
            reason,
        };
        if bytes.is_empty() {
            return Err(bad("it is empty; use a non-empty passphrase".to_string()));
        }
        if bytes.len() > PASSPHRASE_BYTES_MAX {
            return Err(bad(format!(
                "it is {} bytes long, the limit is {PASSPHRASE_BYTES_MAX}",
                bytes.len()
            )));
        }
        Ok(Passphrase { bytes })
    }

    /// Reads a passphrase file: its contents, without one trailing newline.
    pub fn from_file(path: &Path) -> Result<Passphrase> {
        let source_name = format!("passphrase file {}", path.display());
        let mut bytes = read_bounded(path, PASSPHRASE_BYTES_MAX + 2, |limit| {
            CliError::BadPassphrase {
                source_name: source_name.clone(),
                reason: format!("the file is longer than {limit} bytes"),
            }
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Passphrase::new(bytes, &source_name)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(hidden)")
    }
}

/// The JSON of a key file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    version: u32,
    name: String,
    address: String,
    public_key: String,
    secret: SecretJson,
}

/// The secret part of a key file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum SecretJson {
    /// The seed in hex, unencrypted.
    Plain { seed: String },
    /// The seed encrypted under a passphrase.
    Argon2idXchacha20poly1305 {
        salt: String,
        nonce: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        ciphertext: String,
    },
}

impl Drop for SecretJson {
    fn drop(&mut self) {
        if let SecretJson::Plain { seed } = self {
            zeroize::Zeroize::zeroize(seed);
        }
    }
}

/// A key file, parsed; the secret is still sealed if it is encrypted.
pub struct KeyFile {
    path: PathBuf,
    name: String,
    public_key: PublicKey,
    secret: SecretJson,
}

impl KeyFile {
    /// Seals `keypair` under `name`, encrypted if a passphrase is given.
    pub fn seal(
        path: PathBuf,
        name: &str,
        keypair: &Keypair,
        passphrase: Option<&Passphrase>,
    ) -> Result<KeyFile> {
        let public_key = keypair.public_key();
        let seed = Zeroizing::new(keypair.seed());
        let secret = match passphrase {
            None => SecretJson::Plain {
                seed: hex::encode(*seed),
            },
            Some(passphrase) => {
                let mut salt = [0u8; SALT_BYTES];
                let mut nonce = [0u8; NONCE_BYTES];
                OsRng.fill_bytes(&mut salt);
                OsRng.fill_bytes(&mut nonce);
                let cipher = cipher_for(
                    passphrase,
                    &salt,
                    KDF_MEMORY_KIB,
                    KDF_ITERATIONS,
                    KDF_PARALLELISM,
                    &path,
                )?;
                let ciphertext = cipher
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: seed.as_slice(),
                            aad: &associated_data(&public_key),
                        },
                    )
                    .map_err(|_| CliError::CorruptKeyFile {
                        path: path.clone(),
                        reason: "encryption failed".to_string(),
                    })?;
                SecretJson::Argon2idXchacha20poly1305 {
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    memory_kib: KDF_MEMORY_KIB,
                    iterations: KDF_ITERATIONS,
                    parallelism: KDF_PARALLELISM,
                    ciphertext: hex::encode(ciphertext),
                }
            }
        };
        Ok(KeyFile {
            path,
            name: name.to_string(),
            public_key,
            secret,
        })
    }

    /// Reads and parses the key file at `path` (bounded by
    /// [`KEY_FILE_BYTES_MAX`]), checking that its address matches its
    /// public key.
    pub fn read(path: &Path) -> Result<KeyFile> {
        let corrupt = |reason: String| CliError::CorruptKeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_bounded(path, KEY_FILE_BYTES_MAX, |limit| {
            corrupt(format!("it is larger than {limit} bytes"))
        })?;
        let json: KeyFileJson = serde_json::from_slice(&bytes)
            .map_err(|error| corrupt(format!("it is not a key file ({error})")))?;
        if json.version != KEY_FILE_VERSION {
            return Err(corrupt(format!(
                "version {} is not supported (this cairn reads version {KEY_FILE_VERSION})",
                json.version
            )));
        }
        let public_key = PublicKey::from_hex(&json.public_key)
            .map_err(|error| corrupt(format!("public_key: {error}")))?;
        let address = Address::from_bech32(&json.address)
            .map_err(|error| corrupt(format!("address: {error}")))?;
        if address != public_key.address() {
            return Err(corrupt(format!(
                "address {address} does not belong to public key {public_key}"
            )));
        }
        Ok(KeyFile {
            path: path.to_path_buf(),
            name: json.name.clone(),
            public_key,
            secret: json.secret_taken(),
        })
    }

    /// The JSON text to write.
    pub fn to_json(&self) -> Result<Zeroizing<String>> {
        let json = KeyFileJsonRef {
            version: KEY_FILE_VERSION,
            name: &self.name,
            address: self.public_key.address().to_bech32(),
            public_key: self.public_key.to_hex(),
            secret: &self.secret,
        };
        serde_json::to_string_pretty(&json)
            .map(|mut text| {
                text.push('\n');
                Zeroizing::new(text)
            })
            .map_err(|error| CliError::CorruptKeyFile {
                path: self.path.clone(),
                reason: format!("cannot encode it: {error}"),
            })
    }

    /// The name recorded in the file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The address.
    pub fn address(&self) -> Address {
        self.public_key.address()
    }

    /// Whether the seed is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.secret, SecretJson::Argon2idXchacha20poly1305 { .. })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the seed (with `passphrase` if it is encrypted) and checks
    /// that it gives the file's public key.
    pub fn keypair(&self, passphrase: Option<&Passphrase>) -> Result<Keypair> {
        let corrupt = |reason: String| CliError::CorruptKeyFile {
            path: self.path.clone(),
            reason,
        };
        let seed: Zeroizing<[u8; SEED_BYTES]> = match &self.secret {
            SecretJson::Plain { seed } => decode_seed(seed).map_err(corrupt)?,
            SecretJson::Argon2idXchacha20poly1305 {
                salt,
                nonce,
                memory_kib,
                iterations,
                parallelism,
                ciphertext,
            } => {
                let passphrase = passphrase.ok_or_else(|| CliError::PassphraseRequired {
                    name: self.name.clone(),
                })?;
                let salt = decode_fixed::<SALT_BYTES>("salt", salt).map_err(corrupt)?;
                let nonce = decode_fixed::<NONCE_BYTES>("nonce", nonce).map_err(corrupt)?;
                let ciphertext = hex::decode(ciphertext)
                    .map_err(|error| corrupt(format!("ciphertext: {error}")))?;
                if *memory_kib > KDF_MEMORY_KIB_MAX
                    || *iterations > KDF_ITERATIONS_MAX
                    || *parallelism > KDF_PARALLELISM_MAX
                {
                    return Err(corrupt(format!(
                        "Argon2id costs (memory {memory_kib} KiB, {iterations} passes, \
                         {parallelism} lanes) exceed the limits ({KDF_MEMORY_KIB_MAX} KiB, \
                         {KDF_ITERATIONS_MAX} passes, {KDF_PARALLELISM_MAX} lanes)"
                    )));
                }
                let cipher = cipher_for(
                    passphrase,
                    &salt,
                    *memory_kib,
                    *iterations,
                    *parallelism,
                    &self.path,
                )?;
                let plain = Zeroizing::new(
                    cipher
                        .decrypt(
                            XNonce::from_slice(&nonce),
                            Payload {
                                msg: &ciphertext,
                                aad: &associated_data(&self.public_key),
                            },
                        )
                        .map_err(|_| CliError::WrongPassphrase {
                            name: self.name.clone(),
                            path: self.path.clone(),
                        })?,
                );
                let bytes: [u8; SEED_BYTES] = plain.as_slice().try_into().map_err(|_| {
                    corrupt(format!(
                        "the decrypted seed is {} bytes, expected {SEED_BYTES}",
                        plain.len()
                    ))
                })?;
                Zeroizing::new(bytes)
            }
        };
        let keypair = Keypair::from_seed(&seed);
        if keypair.public_key() != self.public_key {
            return Err(corrupt(
                "its secret does not match its public key".to_string(),
            ));
        }
        Ok(keypair)
    }
}

impl KeyFileJson {
    fn secret_taken(mut self) -> SecretJson {
        std::mem::replace(
            &mut self.secret,
            SecretJson::Plain {
                seed: String::new(),
            },
        )
    }
}

/// The borrowed form of [`KeyFileJson`], for writing.
#[derive(Serialize)]
struct KeyFileJsonRef<'a> {
    version: u32,
    name: &'a str,
    address: String,
    public_key: String,
    secret: &'a SecretJson,
}

/// Decodes a 64-hex-character seed (an optional `0x` prefix is accepted).
pub fn decode_seed(text: &str) -> Result<Zeroizing<[u8; SEED_BYTES]>, String> {
    decode_fixed::<SEED_BYTES>("seed", text).map(Zeroizing::new)
}

fn decode_fixed<const N: usize>(what: &str, text: &str) -> Result<[u8; N], String> {
    let trimmed = text.strip_prefix("0x").unwrap_or(text);
    if trimmed.len() != 2 * N {
        return Err(format!(
            "{what} has {} hex characters, expected {}",
            trimmed.len(),
            2 * N
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(trimmed, &mut out).map_err(|error| format!("{what}: {error}"))?;
    Ok(out)
}

fn associated_data(public_key: &PublicKey) -> Vec<u8> {
    let mut data = Vec::with_capacity(ENCRYPTION_DOMAIN.len() + public_key.0.len());
    data.extend_from_slice(ENCRYPTION_DOMAIN);
    data.extend_from_slice(&public_key.0);
    data
}

fn cipher_for(
    passphrase: &Passphrase,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    path: &Path,
) -> Result<XChaCha20Poly1305> {
    let corrupt = |reason: String| CliError::CorruptKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let params = Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|error| corrupt(format!("Argon2id parameters: {error}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|error| corrupt(format!("Argon2id: {error}")))?;
    XChaCha20Poly1305::new_from_slice(key.as_slice())
        .map_err(|error| corrupt(format!("cipher key: {error}")))
}
