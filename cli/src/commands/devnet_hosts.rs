//! `cairn devnet init --hosts IP1,IP2,...`: lays out a devnet of one
//! validator per machine. Owns the layout: one home per host (listening on
//! 0.0.0.0, advertising the host's address, every other host as bootstrap
//! peer, one genesis), the funded accounts' keys, and a `start.sh` per
//! home. Nothing is started: the operator copies each home to its machine.

use std::{
    fs,
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
};

use cairn_genesis::devnet::{build_devnet, DevnetSpec};
use cairn_types::{ChainId, PublicKey, Timestamp};

use crate::{
    cli::DevnetInitArgs,
    commands::{
        devnet::{
            account_name, check_peer_id, find_cairnd, now_millis, run_cairnd, ACCOUNT_BALANCE,
            DEFAULT_CHAIN_ID,
        },
        write_line,
    },
    error::{CliError, Result},
    keyring::{ExistingKey, Keyring},
    limits::{DEVNET_ACCOUNTS_MAX, DEVNET_VALIDATORS_MAX},
};

/// The p2p port of every host (open it between the hosts).
pub const HOSTS_P2P_PORT: u16 = 26656;
/// The RPC port of every host (on 127.0.0.1 unless the operator changes
/// `rpc.listen`).
pub const HOSTS_RPC_PORT: u16 = 26657;
/// Default of `--accounts` for `devnet init`.
pub const HOSTS_DEFAULT_ACCOUNTS: usize = 4;
/// The start script written into every home.
pub const START_SCRIPT: &str = "start.sh";

/// `/ip4/<ip>/tcp/<port>` or `/ip6/<ip>/tcp/<port>`.
fn p2p_multiaddr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("/ip4/{ip}/tcp/{HOSTS_P2P_PORT}"),
        IpAddr::V6(ip) => format!("/ip6/{ip}/tcp/{HOSTS_P2P_PORT}"),
    }
}

/// The `--hosts` list, checked: addresses peers can dial, no repeats.
pub fn parse_hosts(text: &str) -> Result<Vec<IpAddr>> {
    let bad = |reason: String| CliError::DevnetSettings { reason };
    let mut hosts = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let ip: IpAddr = part.parse().map_err(|_| {
            bad(format!(
                "--hosts: {part:?} is not an IP address; give each machine's address, e.g. --hosts 10.0.0.1,10.0.0.2"
            ))
        })?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(bad(format!(
                "--hosts: {ip} cannot be dialled by the other machines; give each machine's own LAN or public address"
            )));
        }
        if hosts.contains(&ip) {
            return Err(bad(format!(
                "--hosts: {ip} is given twice; one validator runs per machine"
            )));
        }
        hosts.push(ip);
    }
    if hosts.is_empty() || hosts.len() > DEVNET_VALIDATORS_MAX {
        return Err(bad(format!(
            "--hosts: give 1 to {DEVNET_VALIDATORS_MAX} addresses, separated by commas"
        )));
    }
    Ok(hosts)
}

/// The home of host `index` in `dir`.
fn host_home(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("host{index}"))
}

/// The `cairnd init` flags of host `index`: listen on 0.0.0.0, advertise
/// its address, and (once the peer ids are known) every other host as
/// bootstrap peer.
fn host_settings(hosts: &[IpAddr], peer_ids: &[String], index: usize) -> Vec<String> {
    let mut settings = vec![
        "--moniker".to_string(),
        format!("host{index}"),
        "--mode".to_string(),
        "validator".to_string(),
        "--p2p-listen".to_string(),
        format!("/ip4/0.0.0.0/tcp/{HOSTS_P2P_PORT}"),
        "--external-address".to_string(),
        p2p_multiaddr(hosts[index]),
        "--rpc-listen".to_string(),
        format!("127.0.0.1:{HOSTS_RPC_PORT}"),
        "--mdns".to_string(),
        "false".to_string(),
    ];
    for (other, peer_id) in peer_ids.iter().enumerate() {
        if other != index {
            settings.extend([
                "--bootstrap".to_string(),
                format!("{}/p2p/{peer_id}", p2p_multiaddr(hosts[other])),
            ]);
        }
    }
    settings
}

/// Runs `cairn devnet init`.
pub async fn init(args: DevnetInitArgs, out: &mut dyn Write) -> Result<()> {
    let hosts = parse_hosts(&args.hosts)?;
    let accounts = args.accounts.unwrap_or(HOSTS_DEFAULT_ACCOUNTS);
    if accounts > DEVNET_ACCOUNTS_MAX {
        return Err(CliError::DevnetSettings {
            reason: format!("--accounts {accounts}: the limit is {DEVNET_ACCOUNTS_MAX}"),
        });
    }
    let chain_id = args
        .chain_id
        .clone()
        .unwrap_or_else(|| DEFAULT_CHAIN_ID.to_string());
    ChainId::new(chain_id.clone()).map_err(|error| CliError::DevnetSettings {
        reason: format!("--chain-id: {error}"),
    })?;
    let dir = args.dir.clone();
    if dir.exists()
        && fs::read_dir(&dir)
            .map_err(CliError::io("read", &dir))?
            .next()
            .is_some()
    {
        return Err(CliError::DevnetSettings {
            reason: format!(
                "{} is not empty; give --dir a new or empty directory",
                dir.display()
            ),
        });
    }
    fs::create_dir_all(&dir).map_err(CliError::io("create the devnet directory", &dir))?;
    let cairnd = find_cairnd(args.cairnd.as_deref())?;

    // Homes with their keys; the bootstrap peers once every id is known.
    let mut peer_ids = Vec::new();
    let mut validators = Vec::new();
    for index in 0..hosts.len() {
        let home = host_home(&dir, index).display().to_string();
        let mut command = vec!["--home".to_string(), home.clone(), "init".to_string()];
        command.extend(host_settings(&hosts, &[], index));
        run_cairnd(&cairnd, &command).await?;
        let peer_id = run_cairnd(&cairnd, &["--home", &home, "show-node-id"]).await?;
        peer_ids.push(check_peer_id(&cairnd, &peer_id)?);
        let key = run_cairnd(&cairnd, &["--home", &home, "show-validator"]).await?;
        let public_key =
            PublicKey::from_hex(key.trim()).map_err(|error| CliError::CairndFailed {
                command: format!("{} --home {home} show-validator", cairnd.display()),
                reason: format!("it printed {:?}, not a public key ({error})", key.trim()),
            })?;
        validators.push((format!("host{index}"), public_key));
    }
    for index in 0..hosts.len() {
        // `cairnd init` of a scratch home writes the complete config.
        let scratch = dir.join(format!(".host{index}.config.tmp"));
        let mut command = vec![
            "--home".to_string(),
            scratch.display().to_string(),
            "init".to_string(),
        ];
        command.extend(host_settings(&hosts, &peer_ids, index));
        run_cairnd(&cairnd, &command).await?;
        let written = scratch.join("config").join("config.toml");
        let config = host_home(&dir, index).join("config").join("config.toml");
        fs::rename(&written, &config).map_err(CliError::io("replace", &config))?;
        fs::remove_dir_all(&scratch).map_err(CliError::io("delete", &scratch))?;
    }

    let devnet = build_devnet(&DevnetSpec {
        chain_id: chain_id.clone(),
        genesis_time: Timestamp(now_millis()),
        validators,
        accounts,
        account_balance: ACCOUNT_BALANCE,
        consensus_params: cairn_genesis::dev::dev_consensus_params(),
        staking_params: cairn_genesis::devnet::devnet_staking_params(),
    })?;
    let genesis = devnet.genesis.to_file();
    genesis.save(&dir.join("genesis.json"))?;
    for index in 0..hosts.len() {
        let home = host_home(&dir, index);
        genesis.save(&home.join("config").join("genesis.json"))?;
        let script = home.join(START_SCRIPT);
        fs::write(
            &script,
            "#!/bin/sh\n# Starts this host's validator; run it on the machine this home was copied to.\nexec cairnd --home \"$(cd \"$(dirname \"$0\")\" && pwd)\" start \"$@\"\n",
        )
        .map_err(CliError::io("write", &script))?;
        set_executable(&script)?;
    }
    let keys = devnet
        .account_keys
        .into_iter()
        .enumerate()
        .map(|(index, keypair)| Ok((account_name(&chain_id, index)?, keypair)))
        .collect::<Result<Vec<_>>>()?;
    Keyring::new(dir.join("keys")).import_all(&keys, None, ExistingKey::Refuse)?;

    write_line(
        out,
        &format!(
            "wrote a devnet of {} validators (chain {chain_id}, genesis {}) in {}",
            hosts.len(),
            devnet.genesis.hash().to_hex(),
            dir.display()
        ),
    )?;
    write_line(
        out,
        &format!(
            "open TCP port {HOSTS_P2P_PORT} (p2p) between the machines; the RPC listens on 127.0.0.1:{HOSTS_RPC_PORT}"
        ),
    )?;
    for (index, ip) in hosts.iter().enumerate() {
        write_line(
            out,
            &format!(
                "host{index}: copy {} to {ip}, then run there: <copied dir>/{START_SCRIPT}   (or: cairnd --home <copied dir> start)",
                host_home(&dir, index).display()
            ),
        )?;
    }
    write_line(
        out,
        &format!(
            "the funded accounts' keys are in {} (unencrypted: a devnet's)",
            dir.join("keys").display()
        ),
    )
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(CliError::io("make executable", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked() {
        let hosts = parse_hosts("10.0.0.1, 10.0.0.2,fd00::3").unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(p2p_multiaddr(hosts[2]), "/ip6/fd00::3/tcp/26656");
        for (bad, said) in [
            ("10.0.0.1,10.0.0.1", "twice"),
            ("127.0.0.1", "cannot be dialled"),
            ("0.0.0.0", "cannot be dialled"),
            ("host-a", "not an IP address"),
            ("", "give 1 to"),
        ] {
            let error = parse_hosts(bad).unwrap_err().to_string();
            assert!(error.contains(said), "{bad}: {error}");
        }
    }

    #[test]
    fn each_host_listens_everywhere_advertises_itself_and_bootstraps_from_the_others() {
        let hosts = parse_hosts("10.0.0.1,10.0.0.2,10.0.0.3").unwrap();
        let ids = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let settings = host_settings(&hosts, &ids, 1).join(" ");
        assert!(
            settings.contains("--p2p-listen /ip4/0.0.0.0/tcp/26656"),
            "{settings}"
        );
        assert!(
            settings.contains("--external-address /ip4/10.0.0.2/tcp/26656"),
            "{settings}"
        );
        assert!(
            settings.contains("--bootstrap /ip4/10.0.0.1/tcp/26656/p2p/A"),
            "{settings}"
        );
        assert!(
            settings.contains("--bootstrap /ip4/10.0.0.3/tcp/26656/p2p/C"),
            "{settings}"
        );
        assert!(!settings.contains("/p2p/B"), "{settings}");
    }
}
