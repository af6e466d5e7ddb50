//! `cairn keys new|list|show|import|export|delete`.

use std::io::Write;

use cairn_types::Keypair;

use crate::{
    cli::KeysCommand,
    commands::{write_json, write_line},
    error::{CliError, Result},
    files::read_bounded,
    keyfile::decode_seed,
    keyring::KeyInfo,
    limits::SECRET_FILE_BYTES_MAX,
};

/// Runs one `cairn keys` command.
pub fn run(command: KeysCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        KeysCommand::New {
            name,
            keyring,
            json,
        } => {
            let passphrase = keyring.passphrase()?;
            let info = keyring.keyring()?.create(&name, passphrase.as_ref())?;
            if json {
                return write_json(out, &info);
            }
            write_line(out, &format!("created key {name}"))?;
            write_info(out, &info)?;
            if !info.encrypted {
                eprintln!(
                    "note: the key is stored unencrypted (mode 0600); pass --passphrase-file or set CAIRN_PASSPHRASE to encrypt keys at rest"
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
            keyring,
            json,
        } => {
            let bad = |reason: String| CliError::BadSecretFile {
                path: secret_file.clone(),
                reason,
            };
            let contents = read_bounded(&secret_file, SECRET_FILE_BYTES_MAX, |limit| {
                bad(format!("it is larger than {limit} bytes"))
            })?;
            let text =
                std::str::from_utf8(&contents).map_err(|_| bad("it is not text".to_string()))?;
            let seed = decode_seed(text.trim()).map_err(bad)?;
            let keypair = Keypair::from_seed(&seed);
            let passphrase = keyring.passphrase()?;
            let info = keyring
                .keyring()?
                .import(&name, &keypair, passphrase.as_ref())?;
            if json {
                return write_json(out, &info);
            }
            write_line(out, &format!("imported key {name}"))?;
            write_info(out, &info)
        }
        KeysCommand::Export { name, keyring } => {
            let passphrase = keyring.passphrase()?;
            let keypair = keyring.keyring()?.keypair(&name, passphrase.as_ref())?;
            eprintln!(
                "warning: this is the secret key of {name}; anyone who has it controls account {}. Do not share it; store it only where only you can read it.",
                keypair.address()
            );
            let seed = zeroize::Zeroizing::new(hex::encode(keypair.seed()));
            write_line(out, &seed)
        }
        KeysCommand::Delete { name, keyring } => {
            let info = keyring.keyring()?.delete(&name)?;
            write_line(
                out,
                &format!("deleted key {name} ({})", info.path.display()),
            )
        }
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
