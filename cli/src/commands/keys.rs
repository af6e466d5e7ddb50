//! `cairn keys new|list|show|import|import-dev|export|delete`.

use std::{io::Write, path::Path};

use cairn_types::Keypair;

use crate::{
    cli::KeysCommand,
    commands::{write_json, write_line},
    error::{CliError, Result},
    files::read_bounded,
    keyfile::decode_seed,
    keyring::{ExistingKey, KeyInfo, KeyName, Keyring},
    limits::SECRET_FILE_BYTES_MAX,
    prompt,
};

/// Runs one `cairn keys` command.
pub fn run(command: KeysCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        KeysCommand::New {
            name,
            unencrypted,
            keyring,
            json,
        } => {
            let target = keyring.keyring()?;
            // A taken name is refused before a passphrase is asked for.
            if target.path_of(&name).exists() {
                return Err(CliError::KeyExists {
                    path: target.path_of(&name),
                    name: name.to_string(),
                });
            }
            let passphrase = keyring.new_key_passphrase(&name, unencrypted)?;
            let info = target.create(&name, passphrase.as_ref())?;
            if json {
                return write_json(out, &info);
            }
            write_line(out, &format!("created key {name}"))?;
            write_info(out, &info)?;
            if !info.encrypted && !unencrypted {
                eprintln!(
                    "note: the key is stored unencrypted (mode 0600); pass --passphrase-file, set CAIRN_PASSPHRASE or run on a terminal to encrypt keys at rest, or pass --unencrypted to say it is meant"
                );
            }
            Ok(())
        }
        KeysCommand::List { keyring, json } => {
            let keyring = keyring.keyring()?;
            if json {
                return write_json(out, &keyring.list()?);
            }
            let names = keyring.names()?;
            if names.is_empty() {
                write_line(
                    out,
                    &format!(
                        "no keys in {}; create one with `cairn keys new NAME`",
                        keyring.dir().display()
                    ),
                )?;
                return Ok(());
            }
            let name_width = names
                .iter()
                .map(|name| name.as_str().len())
                .max()
                .unwrap_or(0);
            // One unreadable file does not hide the other keys.
            for name in &names {
                let line = match keyring.show(name) {
                    Ok(key) => {
                        let encrypted = if key.encrypted { "  (encrypted)" } else { "" };
                        format!("{:<name_width$}  {}{encrypted}", key.name, key.address)
                    }
                    Err(error) => format!("{:<name_width$}  unreadable: {error}", name.as_str()),
                };
                write_line(out, &line)?;
            }
            Ok(())
        }
        KeysCommand::Show {
            name,
            keyring,
            json,
        } => {
            let info = keyring.keyring()?.show(&name)?;
            if json {
                return write_json(out, &info);
            }
            write_info(out, &info)
        }
        KeysCommand::Import {
            name,
            secret_file,
            unencrypted,
            keyring,
            json,
        } => {
            let keypair = read_secret_file(&secret_file)?;
            let target = keyring.keyring()?;
            if target.path_of(&name).exists() {
                return Err(CliError::KeyExists {
                    path: target.path_of(&name),
                    name: name.to_string(),
                });
            }
            let passphrase = keyring.new_key_passphrase(&name, unencrypted)?;
            let info = target.import(&name, &keypair, passphrase.as_ref())?;
            if json {
                return write_json(out, &info);
            }
            write_line(out, &format!("imported key {name}"))?;
            write_info(out, &info)
        }
        KeysCommand::ImportDev { keyring, json } => {
            let keyring = keyring.keyring()?;
            let keys = cairn_genesis::dev::dev_account_keypairs()
                .into_iter()
                .enumerate()
                .map(|(index, keypair)| Ok((KeyName::new(&format!("dev-{index}"))?, keypair)))
                .collect::<Result<Vec<_>>>()?;
            let infos = keyring.import_all(&keys, None, ExistingKey::KeepIfSame)?;
            if json {
                return write_json(out, &infos);
            }
            write_line(
                out,
                &format!(
                    "imported {} dev accounts of chain {} (`cairnd start --dev`) into {}:",
                    infos.len(),
                    cairn_genesis::dev::DEV_CHAIN_ID,
                    keyring.dir().display()
                ),
            )?;
            for info in &infos {
                write_line(out, &format!("  {:<6}  {}", info.name, info.address))?;
            }
            eprintln!(
                "warning: these keys are public (INSECURE); use them only on the dev chain, never for anything real"
            );
            Ok(())
        }
        KeysCommand::Export { name, keyring } => {
            let keypair = keyring.open_key(&keyring.keyring()?, &name)?;
            eprintln!(
                "warning: this is the secret key of {name}; anyone who has it controls account {}. Do not share it; store it only where only you can read it.",
                keypair.address()
            );
            let seed = zeroize::Zeroizing::new(hex::encode(keypair.seed()));
            write_line(out, &seed)
        }
        KeysCommand::Delete { name, yes, keyring } => {
            let keyring = keyring.keyring()?;
            if !yes {
                confirm_delete(&keyring, &name)?;
            }
            let info = keyring.delete(&name)?;
            write_line(
                out,
                &format!("deleted key {name} ({})", info.path.display()),
            )
        }
    }
}

/// The keypair of a file holding a secret seed in hex (`keys import
/// --secret-file`, `tx send --private-key-file`).
pub(crate) fn read_secret_file(path: &Path) -> Result<Keypair> {
    let bad = |reason: String| CliError::BadSecretFile {
        path: path.to_path_buf(),
        reason,
    };
    let contents = read_bounded(path, SECRET_FILE_BYTES_MAX, |limit| {
        bad(format!("it is larger than {limit} bytes"))
    })?;
    let text = std::str::from_utf8(&contents).map_err(|_| bad("it is not text".to_string()))?;
    let text = text.trim();
    if text.starts_with('{') {
        return node_key_file(text).map_err(bad);
    }
    let seed = decode_seed(text).map_err(bad)?;
    Ok(Keypair::from_seed(&seed))
}

/// A `cairnd` key file (`config/validator_key.json`): its secret, checked
/// against the public key it names.
fn node_key_file(text: &str) -> std::result::Result<Keypair, String> {
    #[derive(serde::Deserialize)]
    struct NodeKeyFile {
        public_key: String,
        secret_key: String,
    }
    let file: NodeKeyFile = serde_json::from_str(text)
        .map_err(|error| format!("it is JSON but not a cairnd key file ({error})"))?;
    let seed = decode_seed(file.secret_key.trim())?;
    let keypair = Keypair::from_seed(&seed);
    if keypair.public_key().to_hex() != file.public_key.trim().to_lowercase() {
        return Err("its public_key does not belong to its secret_key".into());
    }
    Ok(keypair)
}

/// Asks whether to delete the key `name`, on a terminal only.
fn confirm_delete(keyring: &Keyring, name: &KeyName) -> Result<()> {
    let action = format!("delete key {name}");
    let what = match keyring.show(name) {
        Ok(info) => format!("account {}, file {}", info.address, info.path.display()),
        // A corrupted file can still be deleted.
        Err(CliError::CorruptKeyFile { path, .. }) => format!("corrupted file {}", path.display()),
        Err(error) => return Err(error),
    };
    if !prompt::stdin_is_terminal() {
        return Err(CliError::ConfirmationRequired { action });
    }
    let question = format!(
        "delete key {name} ({what})? Without a copy of its secret (`cairn keys export {name}`) the account cannot be used again."
    );
    if prompt::confirm(&question)? {
        Ok(())
    } else {
        Err(CliError::Declined { action })
    }
}

fn write_info(out: &mut dyn Write, info: &KeyInfo) -> Result<()> {
    write_line(out, &format!("name:        {}", info.name))?;
    write_line(out, &format!("address:     {}", info.address))?;
    write_line(out, &format!("public key:  {}", info.public_key))?;
    write_line(
        out,
        &format!("encrypted:   {}", if info.encrypted { "yes" } else { "no" }),
    )?;
    write_line(out, &format!("file:        {}", info.path.display()))
}
