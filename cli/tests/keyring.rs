//! The keyring library: create, list, show, import, open, delete;
//! permissions; encryption at rest; and the errors a person sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, os::unix::fs::PermissionsExt};

use cairn_cli::{CliError, ExistingKey, KeyName, Keyring, Passphrase};
use cairn_types::Keypair;
use zeroize::Zeroizing;

fn name(text: &str) -> KeyName {
    KeyName::new(text).unwrap()
}

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(Zeroizing::new(text.as_bytes().to_vec()), "test").unwrap()
}

fn keyring() -> (tempfile::TempDir, Keyring) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new(dir.path().join("keys"));
    (dir, keyring)
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_list_show_open_delete() {
    let (_dir, keyring) = keyring();
    assert!(
        keyring.list().unwrap().is_empty(),
        "a missing directory is an empty keyring"
    );
    let alice = keyring.create(&name("alice"), None).unwrap();
    let bob = keyring.create(&name("bob"), None).unwrap();
    assert_ne!(alice.address, bob.address);
    assert!(!alice.encrypted);

    let listed = keyring.list().unwrap();
    assert_eq!(listed, vec![alice.clone(), bob.clone()]);
    assert_eq!(keyring.show(&name("alice")).unwrap(), alice);

    let keypair = keyring.keypair(&name("alice"), None).unwrap();
    assert_eq!(keypair.public_key(), alice.public_key);
    assert_eq!(keypair.address(), alice.address);

    let deleted = keyring.delete(&name("alice")).unwrap();
    assert_eq!(deleted.address, alice.address);
    assert_eq!(keyring.list().unwrap(), vec![bob]);
    assert!(!alice.path.exists());
}

#[test]
fn files_are_owner_only() {
    let (_dir, keyring) = keyring();
    let info = keyring.create(&name("alice"), None).unwrap();
    assert_eq!(mode(&info.path), 0o600);
    assert_eq!(mode(keyring.dir()), 0o700);
    // An existing directory open to others is made private on write.
    fs::set_permissions(keyring.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    keyring.create(&name("bob"), None).unwrap();
    assert_eq!(mode(keyring.dir()), 0o700);
    keyring.delete(&name("bob")).unwrap();
    // No temporary file is left behind.
    let entries: Vec<_> = fs::read_dir(keyring.dir()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn a_key_readable_by_others_is_refused() {
    let (_dir, keyring) = keyring();
    let info = keyring.create(&name("alice"), None).unwrap();
    fs::set_permissions(&info.path, fs::Permissions::from_mode(0o644)).unwrap();
    let error = keyring.keypair(&name("alice"), None).unwrap_err();
    assert!(matches!(error, CliError::InsecureKeyFile { .. }), "{error}");
    assert!(error.to_string().contains("chmod 600"), "{error}");
}

#[test]
fn import_keeps_the_seed() {
    let (_dir, keyring) = keyring();
    let keypair = Keypair::from_seed(&[7; 32]);
    let info = keyring.import(&name("seven"), &keypair, None).unwrap();
    assert_eq!(info.public_key, keypair.public_key());
    let opened = keyring.keypair(&name("seven"), None).unwrap();
    assert_eq!(opened.seed(), [7; 32]);
}

#[test]
fn an_existing_name_is_never_overwritten() {
    let (_dir, keyring) = keyring();
    let first = keyring.create(&name("alice"), None).unwrap();
    let error = keyring.create(&name("alice"), None).unwrap_err();
    assert!(matches!(error, CliError::KeyExists { .. }), "{error}");
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(keyring.show(&name("alice")).unwrap(), first);
}

#[test]
fn unknown_names_list_the_known_ones() {
    let (_dir, keyring) = keyring();
    let error = keyring.show(&name("carol")).unwrap_err();
    assert!(error.to_string().contains("keyring is empty"), "{error}");
    keyring.create(&name("alice"), None).unwrap();
    keyring.create(&name("bob"), None).unwrap();
    let error = keyring.keypair(&name("carol"), None).unwrap_err();
    assert!(matches!(error, CliError::UnknownKey { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("\"carol\"") && text.contains("known keys: alice, bob"),
        "{text}"
    );
    assert!(keyring.delete(&name("carol")).is_err());
}

#[test]
fn encrypted_round_trip() {
    let (_dir, keyring) = keyring();
    let secret = passphrase("correct horse battery staple");
    let keypair = Keypair::from_seed(&[9; 32]);
    let info = keyring
        .import(&name("vault"), &keypair, Some(&secret))
        .unwrap();
    assert!(info.encrypted);
    let text = fs::read_to_string(&info.path).unwrap();
    assert!(
        !text.contains(&hex::encode([9u8; 32])),
        "the seed is not stored in clear"
    );
    assert!(text.contains("argon2id"), "{text}");
    // Address and public key need no passphrase.
    assert_eq!(
        keyring.show(&name("vault")).unwrap().public_key,
        keypair.public_key()
    );
    let opened = keyring.keypair(&name("vault"), Some(&secret)).unwrap();
    assert_eq!(opened.seed(), [9; 32]);
}

#[test]
fn wrong_or_missing_passphrase_is_named() {
    let (_dir, keyring) = keyring();
    keyring
        .create(&name("vault"), Some(&passphrase("right")))
        .unwrap();
    let error = keyring
        .keypair(&name("vault"), Some(&passphrase("wrong")))
        .unwrap_err();
    assert!(matches!(error, CliError::WrongPassphrase { .. }), "{error}");
    assert!(error.to_string().contains("wrong passphrase"), "{error}");
    let error = keyring.keypair(&name("vault"), None).unwrap_err();
    assert!(
        matches!(error, CliError::PassphraseRequired { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("CAIRN_PASSPHRASE"), "{error}");
}

#[test]
fn corrupted_files_are_reported() {
    let (_dir, keyring) = keyring();
    let info = keyring.create(&name("alice"), None).unwrap();

    fs::write(&info.path, b"{ not json").unwrap();
    let error = keyring.show(&name("alice")).unwrap_err();
    assert!(matches!(error, CliError::CorruptKeyFile { .. }), "{error}");
    assert!(error.to_string().contains("corrupted"), "{error}");

    // A file whose address and public key disagree.
    let other = keyring.create(&name("bob"), None).unwrap();
    let text = fs::read_to_string(&other.path).unwrap();
    let altered = text.replace(&other.address.to_string(), &info.address.to_string());
    fs::write(&other.path, altered).unwrap();
    let error = keyring.show(&name("bob")).unwrap_err();
    assert!(error.to_string().contains("does not belong"), "{error}");

    // A corrupted key can still be deleted.
    keyring.delete(&name("alice")).unwrap();
}

#[test]
fn a_tampered_ciphertext_fails_to_open() {
    let (_dir, keyring) = keyring();
    let secret = passphrase("right");
    let info = keyring.create(&name("vault"), Some(&secret)).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&info.path).unwrap()).unwrap();
    let ciphertext = json["secret"]["ciphertext"].as_str().unwrap().to_string();
    let flipped = if ciphertext.starts_with('0') {
        "1"
    } else {
        "0"
    };
    json["secret"]["ciphertext"] = format!("{flipped}{}", &ciphertext[1..]).into();
    fs::write(&info.path, json.to_string()).unwrap();
    let error = keyring.keypair(&name("vault"), Some(&secret)).unwrap_err();
    assert!(matches!(error, CliError::WrongPassphrase { .. }), "{error}");

    // Absurd KDF costs are refused before anything is allocated.
    json["secret"]["memory_kib"] = u32::MAX.into();
    fs::write(&info.path, json.to_string()).unwrap();
    let error = keyring.keypair(&name("vault"), Some(&secret)).unwrap_err();
    assert!(error.to_string().contains("exceed the limits"), "{error}");
}

#[test]
fn key_names_are_checked() {
    for bad in [
        "",
        "../etc",
        "a b",
        "-flag",
        ".hidden",
        "a/b",
        &"x".repeat(65),
        "é",
    ] {
        let error = KeyName::new(bad).unwrap_err();
        assert!(
            error.to_string().contains("bad key name"),
            "{bad:?}: {error}"
        );
    }
    for good in ["alice", "devnet-1.account_0", "A9"] {
        assert!(KeyName::new(good).is_ok(), "{good:?}");
    }
}

#[test]
fn import_all_checks_every_name_first() {
    let (_dir, keyring) = keyring();
    let keys: Vec<(KeyName, Keypair)> = (0..3u8)
        .map(|index| {
            (
                name(&format!("devnet-account-{index}")),
                Keypair::from_seed(&[index + 1; 32]),
            )
        })
        .collect();
    let infos = keyring
        .import_all(&keys, None, ExistingKey::Refuse)
        .unwrap();
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[2].public_key, keys[2].1.public_key());

    // Importing the same keys again: refused, or kept as they are.
    assert!(matches!(
        keyring.import_all(&keys, None, ExistingKey::Refuse),
        Err(CliError::KeyExists { .. })
    ));
    let again = keyring
        .import_all(&keys, None, ExistingKey::KeepIfSame)
        .unwrap();
    assert_eq!(again, infos);

    // A different key under a taken name refuses everything: the new
    // name before it is not written either.
    let conflicting = vec![
        (name("fresh"), Keypair::from_seed(&[40; 32])),
        (name("devnet-account-0"), Keypair::from_seed(&[41; 32])),
    ];
    assert!(keyring
        .import_all(&conflicting, None, ExistingKey::KeepIfSame)
        .is_err());
    assert!(keyring.show(&name("fresh")).is_err());
}

#[test]
fn passphrase_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase");
    fs::write(&path, "secret\n").unwrap();
    let from_file = Passphrase::from_file(&path).unwrap();
    // The trailing newline is not part of it: a key sealed with "secret"
    // opens with the file.
    let (_keys_dir, keyring) = keyring();
    keyring
        .import(
            &name("k"),
            &Keypair::from_seed(&[3; 32]),
            Some(&passphrase("secret")),
        )
        .unwrap();
    assert!(keyring.keypair(&name("k"), Some(&from_file)).is_ok());

    fs::write(&path, "").unwrap();
    let error = Passphrase::from_file(&path).unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
    fs::write(&path, "x".repeat(5000)).unwrap();
    assert!(Passphrase::from_file(&path).is_err());
}
