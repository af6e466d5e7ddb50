//! Questions asked on the terminal: a y/N confirmation and passphrases
//! (read with echo off by `rpassword`). They are asked only when standard
//! input is a terminal ([`stdin_is_terminal`]); scripts get flags
//! (`--yes`, `--passphrase-file`, `--unencrypted`) instead and are never
//! blocked waiting for an answer.

use std::io::{BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::{
    error::{CliError, Result},
    keyfile::Passphrase,
    keyring::KeyName,
};

/// Where a typed passphrase came from, for error messages.
const TERMINAL_SOURCE: &str = "the terminal";

/// Longest answer to a y/N question read, in bytes.
const ANSWER_BYTES_MAX: u64 = 256;

/// Whether standard input is a terminal (a person can answer).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` on standard error and reads one line from standard
/// input: `y` or `yes` (any case) is yes, anything else (an empty line, end
/// of input) is no.
pub fn confirm(question: &str) -> Result<bool> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")
        .and_then(|()| stderr.flush())
        .map_err(CliError::Output)?;
    drop(stderr);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .take(ANSWER_BYTES_MAX)
        .read_line(&mut answer)
        .map_err(CliError::io("read the answer from", "standard input"))?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Reads a passphrase from the terminal, with echo off.
pub fn passphrase(prompt: &str) -> Result<Passphrase> {
    let typed = rpassword::prompt_password(prompt)
        .map_err(CliError::io("read a passphrase from", "the terminal"))?;
    Passphrase::new(Zeroizing::new(typed.into_bytes()), TERMINAL_SOURCE)
}

/// Asks twice for the passphrase of the new key `name`; the two entries
/// must match.
pub fn new_passphrase(name: &KeyName) -> Result<Passphrase> {
    let first = rpassword::prompt_password(format!(
        "passphrase to encrypt key {name} (or Ctrl-C, then pass --unencrypted): "
    ))
    .map(|text| Zeroizing::new(text.into_bytes()))
    .map_err(CliError::io("read a passphrase from", "the terminal"))?;
    let second = rpassword::prompt_password("the same passphrase again: ")
        .map(|text| Zeroizing::new(text.into_bytes()))
        .map_err(CliError::io("read a passphrase from", "the terminal"))?;
    if first != second {
        return Err(CliError::BadPassphrase {
            source_name: TERMINAL_SOURCE.to_string(),
            reason: "the two entries differ; run the command again".to_string(),
        });
    }
    Passphrase::new(first, TERMINAL_SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for yes in ["y\n", "Y", "yes\n", " YES \r\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yess", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
