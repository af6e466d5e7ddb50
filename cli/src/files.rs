//! Bounded reads of small files (key files, secret files, passphrase
//! files), held in memory that is zeroed when dropped.

use std::{io::Read, path::Path};

use zeroize::Zeroizing;

use crate::error::{CliError, Result};

/// Reads at most `bytes_max` bytes of `path`; a longer file is an error
/// built by `too_large` from the limit.
pub fn read_bounded(
    path: &Path,
    bytes_max: usize,
    too_large: impl FnOnce(usize) -> CliError,
) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path).map_err(CliError::io("read", path))?;
    let mut contents = Zeroizing::new(Vec::new());
    let limit = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut contents)
        .map_err(CliError::io("read", path))?;
    if contents.len() > bytes_max {
        return Err(too_large(bytes_max));
    }
    Ok(contents)
}
