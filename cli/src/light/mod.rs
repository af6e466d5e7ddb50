//! A light client: checks what one node says against a root of trust the
//! user chose (a genesis file, or a height and block hash), so the CLI
//! never has to trust the node it talks to.
//!
//! - [`trusted`]: the trusted state per chain, in the light directory.
//! - [`verifier`]: skipping verification with bisection from the trusted
//!   height to the height of an answer.
//! - [`source`]: a node as the source of headers, certificates and sets.
//!
//! [`verify_account`] checks an account proof
//! (`GET /account/{address}?prove=true`) against the state root of the
//! verified header of its height, [`verify_transaction`] an inclusion
//! proof (`GET /tx/{hash}?prove=true`) against its transactions root.
//! Both refuse to start from a trusted state older than the trusting
//! period (`--trusting-period`), then refuse a header older than the freshness bound
//! (`--max-age`), compare the block hash with a witness node's if one is
//! given (a difference is a fork: nothing is trusted), and only then keep
//! the verified height as the new trusted state.

pub mod source;
pub mod trusted;
pub mod verifier;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cairn_genesis::Genesis;
use cairn_state::{verify_absence_in_state, verify_in_state, AbsenceProof, Account, AccountProof};
use cairn_types::{Address, ChainId, Hash, Header, Height, Timestamp};
use serde::{Deserialize, Serialize};

pub use source::NodeSource;
pub use trusted::{default_light_dir, TrustedState};
pub use verifier::{LightBlock, Source, Stats, Verifier};

use crate::{
    error::{CliError, Result},
    limits::{LIGHT_MAX_AGE_DEFAULT, LIGHT_TRUSTING_PERIOD_DEFAULT, WITNESS_WAIT},
    rpc::NodeClient,
};

/// How a verification runs: the root of trust, the freshness bound, the
/// witness.
#[derive(Clone, Debug, Default)]
pub struct LightOptions {
    /// Where trusted states are kept (none: nothing is kept).
    pub light_dir: Option<PathBuf>,
    /// A genesis to start from when no state is kept for its chain.
    pub genesis: Option<PathBuf>,
    /// A second node whose block hash at the verified height must match.
    pub witness: Option<String>,
    /// The oldest a verified header may be ([`LIGHT_MAX_AGE_DEFAULT`]
    /// when `None`).
    pub max_age: Option<Duration>,
    /// The oldest the trusted state may be
    /// ([`LIGHT_TRUSTING_PERIOD_DEFAULT`] when `None`).
    pub trusting_period: Option<Duration>,
}

/// What the light client verified.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The verified height.
    pub height: u64,
    /// Its block hash.
    pub header_hash: Hash,
    /// Its block time (ms since the Unix epoch).
    pub time: u64,
    /// The trusted height verification started from (0: the genesis).
    pub from_height: u64,
    /// Validators whose signatures are in the height's certificate.
    pub signers: usize,
    /// The number of validators in the height's set.
    pub validators: usize,
    /// The power they hold.
    pub signed_power: u64,
    /// The set's total power.
    pub total_power: u64,
    /// What this run fetched and checked.
    pub fetched: Stats,
    /// The witness that agreed, if one was asked.
    pub witness: Option<String>,
    /// Whether the trusted state moved to this height.
    pub trusted_state_updated: bool,
}

impl Verified {
    /// "verified at height H by N validators holding P% of the power".
    pub fn summary(&self) -> String {
        let percent = self.signed_power as f64 * 100.0 / self.total_power.max(1) as f64;
        format!(
            "verified at height {} by {} validators holding {percent:.1}% of the power",
            self.height, self.signers
        )
    }
}

/// The trusted state to start from: the one kept for the chain (of
/// `--genesis`, else the chain the node says it is on), else the
/// genesis's.
pub async fn trusted_root(client: &NodeClient, options: &LightOptions) -> Result<TrustedState> {
    let dir = options.light_dir.as_deref();
    if let Some(path) = &options.genesis {
        let genesis = Genesis::load(path)?;
        return match trusted::load(dir, &genesis.chain_id)? {
            Some(state) if state.genesis_hash.is_some_and(|hash| hash != genesis.hash()) => {
                Err(CliError::LightState {
                    path: trusted::trusted_file(dir.unwrap_or(Path::new(".")), &genesis.chain_id),
                    reason: format!(
                        "it was started from genesis {}, but --genesis {} hashes to {}; remove the file or use another light directory (CAIRN_LIGHT_DIR)",
                        state.genesis_hash.map(|hash| hash.to_string()).unwrap_or_default(),
                        path.display(),
                        genesis.hash()
                    ),
                })
            }
            Some(state) => Ok(state),
            None => Ok(TrustedState::from_genesis(&genesis)),
        };
    }
    let (status, _) = client.status().await?;
    let chain_id =
        ChainId::new(status.chain_id.clone()).map_err(|error| CliError::BadResponse {
            url: client.url().to_string(),
            what: "GET /status".into(),
            reason: error.to_string(),
        })?;
    trusted::load(dir, &chain_id)?.ok_or_else(|| CliError::LightUninitialized {
        chain_id: chain_id.to_string(),
        dir: dir
            .map(|dir| dir.display().to_string())
            .unwrap_or_else(|| "(no light directory: set CAIRN_LIGHT_DIR)".into()),
    })
}

/// Verifies `height` from the trusted root, then freshness and witness;
/// keeps the new trusted state. `check` runs on the verified header
/// before anything is kept (the proof of the answer).
async fn verify_height(
    client: &NodeClient,
    options: &LightOptions,
    height: u64,
    check: impl FnOnce(&LightBlock) -> Result<()>,
) -> Result<(LightBlock, Verified)> {
    let start = trusted_root(client, options).await?;
    check_within_trusting_period(
        &start,
        options
            .trusting_period
            .unwrap_or(LIGHT_TRUSTING_PERIOD_DEFAULT),
        now(),
    )?;
    let source = NodeSource::new(client);
    let mut verifier = Verifier::new(&source);
    let (state, block) = verifier.verify_to(&start, height).await?;
    check(&block)?;
    check_fresh(
        client,
        &block.header,
        options.max_age.unwrap_or(LIGHT_MAX_AGE_DEFAULT),
        now(),
    )?;
    if let Some(witness) = &options.witness {
        check_witness(client, witness, &block.header).await?;
    }
    let updated = match options.light_dir.as_deref() {
        Some(dir) if state.height > start.height => match trusted::save(dir, &state, false) {
            Ok(updated) => updated,
            Err(error) => {
                eprintln!(
                    "note: the verified height is not kept ({error}); the next check starts from height {} again",
                    start.height
                );
                false
            }
        },
        _ => false,
    };
    let verified = Verified {
        height: block.header.height.0,
        header_hash: block.header.hash(),
        time: block.header.time.0,
        from_height: start.height,
        signers: block.signers,
        validators: block.set.len(),
        signed_power: block.signed_power,
        total_power: block.set.total_power().0,
        fetched: verifier.stats().clone(),
        witness: options.witness.clone(),
        trusted_state_updated: updated,
    };
    Ok((block, verified))
}

/// Now, in ms since the Unix epoch.
fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(millis)
}

/// Refuses a trusted state older than `period` at `now` (CometBFT's
/// trusting period: past it, the stake behind the trusted validators may
/// be gone, and with it any cost of signing a fake chain).
pub fn check_within_trusting_period(
    trusted: &TrustedState,
    period: Duration,
    now: Timestamp,
) -> Result<()> {
    let age = now.0.saturating_sub(trusted.time.0);
    let bound = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    if age > bound {
        return Err(CliError::TrustExpired {
            chain_id: trusted.chain_id.to_string(),
            height: trusted.height,
            age_hours: age as f64 / 3_600_000.0,
            period_hours: bound as f64 / 3_600_000.0,
        });
    }
    Ok(())
}

/// Refuses a header older than `max_age` at `now`.
pub fn check_fresh(
    client: &NodeClient,
    header: &Header,
    max_age: Duration,
    now: Timestamp,
) -> Result<()> {
    let age = now.0.saturating_sub(header.time.0);
    let bound = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    if age > bound {
        return Err(CliError::Unverified {
            url: client.url().to_string(),
            reason: format!(
                "the answer is of height {}, whose block is {:.1} s old, beyond the freshness bound of {:.1} s (--max-age): the node is stale, stalled or replaying an old answer; ask another node, or pass a larger --max-age",
                header.height.0,
                age as f64 / 1000.0,
                bound as f64 / 1000.0
            ),
        });
    }
    Ok(())
}

/// Asks `witness` for the header of the verified height (waiting up to
/// [`WITNESS_WAIT`] for a witness a little behind) and compares hashes.
async fn check_witness(client: &NodeClient, witness: &str, verified: &Header) -> Result<()> {
    let witness_client = NodeClient::new(witness)?;
    let height = verified.height.0;
    let started = std::time::Instant::now();
    let header: Header = loop {
        match witness_client.get(&format!("/header/{height}")).await {
            Ok((header, _)) => break header,
            Err(CliError::NodeError { status: 404, .. }) if started.elapsed() < WITNESS_WAIT => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(CliError::NodeError { status: 404, .. }) => {
                return Err(CliError::Unverified {
                    url: client.url().to_string(),
                    reason: format!(
                        "the witness at {witness} has no header at height {height} after {} s, so the answer cannot be cross-checked; nothing was trusted. Try again, or use another witness",
                        WITNESS_WAIT.as_secs()
                    ),
                })
            }
            Err(error) => return Err(error),
        }
    };
    if header.hash() != verified.hash() || header.height != verified.height {
        return Err(CliError::Fork {
            primary: client.url().to_string(),
            witness: witness.to_string(),
            height,
            primary_hash: verified.hash().to_string(),
            witness_hash: header.hash().to_string(),
        });
    }
    Ok(())
}

/// The proof part of `GET /account/{address}?prove=true`.
#[derive(Clone, Debug, Deserialize)]
struct ProofJson {
    height: u64,
    exists: bool,
    balance: u64,
    nonce: u64,
    #[serde(default)]
    account_proof: Option<AccountProof>,
    #[serde(default)]
    absence_proof: Option<AbsenceProof>,
    staking_hash: Hash,
    header: Header,
}

/// The proof part of `GET /tx/{hash}?prove=true`.
#[derive(Clone, Debug, Deserialize)]
struct InclusionJson {
    index: u64,
    count: u64,
    path: Vec<Hash>,
    header: Header,
}

/// A proven account, or a proven absence of one.
#[derive(Clone, Debug, Serialize)]
pub struct ProvenAccount {
    /// The address.
    pub address: String,
    /// Whether the address has an account (proven either way).
    pub exists: bool,
    /// The proven balance (0 for an address without an account).
    pub balance: u64,
    /// The proven nonce.
    pub nonce: u64,
    /// The proof's sibling count (log2 of the account count, rounded up;
    /// 0 for the empty state).
    pub proof_siblings: usize,
    /// What was verified.
    pub verified: Verified,
}

/// A proven transaction.
#[derive(Clone, Debug, Serialize)]
pub struct ProvenTransaction {
    /// Its hash.
    pub hash: Hash,
    /// The height of its block.
    pub height: u64,
    /// Its position in the block (proven: the transactions root binds
    /// the count, so the audit path fixes the index).
    pub index: u64,
    /// The transaction itself, checked to have `hash`.
    pub transaction: cairn_types::SignedTransaction,
    /// What was verified.
    pub verified: Verified,
}

fn unverified(client: &NodeClient, reason: String) -> CliError {
    CliError::Unverified {
        url: client.url().to_string(),
        reason,
    }
}

/// Fetches `address`'s account with a proof and verifies it against the
/// trusted state (see the module doc).
pub async fn verify_account(
    client: &NodeClient,
    address: &Address,
    options: &LightOptions,
) -> Result<ProvenAccount> {
    let (answer, _) = client
        .get::<serde_json::Value>(&format!("/account/{address}?prove=true"))
        .await?;
    let proof: ProofJson =
        serde_json::from_value(answer["proof"].clone()).map_err(|error| CliError::BadResponse {
            url: client.url().to_string(),
            what: format!("GET /account/{address}?prove=true"),
            reason: format!("no proof ({error})"),
        })?;
    let account = Account {
        balance: proof.balance,
        nonce: proof.nonce,
    };
    let (_, verified) = verify_height(client, options, proof.height, |block| {
        if block.header != proof.header {
            return Err(unverified(
                client,
                format!(
                    "the header in the account proof is not the verified header {} of height {}",
                    block.header.hash(),
                    proof.height
                ),
            ));
        }
        match (proof.exists, &proof.account_proof, &proof.absence_proof) {
            (true, Some(path), None) => {
                if !verify_in_state(
                    &block.header.state_root,
                    &proof.staking_hash,
                    address,
                    &account,
                    path,
                ) {
                    return Err(unverified(
                        client,
                        format!(
                            "the account proof (balance {}, nonce {}) does not lead to the state root {} of height {}",
                            proof.balance, proof.nonce, block.header.state_root, proof.height
                        ),
                    ));
                }
            }
            (false, None, Some(absence)) => {
                if account != Account::default() {
                    return Err(unverified(
                        client,
                        format!(
                            "the node claims {address} has no account, yet a balance of {} and nonce {}",
                            proof.balance, proof.nonce
                        ),
                    ));
                }
                if !verify_absence_in_state(
                    &block.header.state_root,
                    &proof.staking_hash,
                    address,
                    absence,
                ) {
                    return Err(unverified(
                        client,
                        format!(
                            "the proof that {address} has no account does not lead to the state root {} of height {} (or its gap does not hold the address)",
                            block.header.state_root, proof.height
                        ),
                    ));
                }
            }
            _ => {
                return Err(unverified(
                    client,
                    format!(
                        "the account proof of height {} is incomplete: `exists` is {} but it carries {} path and {} proof of absence",
                        proof.height,
                        proof.exists,
                        if proof.account_proof.is_some() { "a" } else { "no" },
                        if proof.absence_proof.is_some() { "a" } else { "no" },
                    ),
                ));
            }
        }
        Ok(())
    })
    .await?;
    let proof_siblings = match (&proof.account_proof, &proof.absence_proof) {
        (Some(path), _) => path.siblings.len(),
        (None, Some(AbsenceProof::Gap { proof: path, .. })) => path.siblings.len(),
        _ => 0,
    };
    Ok(ProvenAccount {
        address: address.to_string(),
        exists: proof.exists,
        balance: proof.balance,
        nonce: proof.nonce,
        proof_siblings,
        verified,
    })
}

/// Fetches transaction `hash` with its inclusion proof and verifies it
/// against the trusted state (see the module doc).
pub async fn verify_transaction(
    client: &NodeClient,
    hash: &Hash,
    options: &LightOptions,
) -> Result<ProvenTransaction> {
    let (answer, _) = client
        .get::<serde_json::Value>(&format!("/tx/{}?prove=true", hash.to_hex()))
        .await?;
    let bad = |reason: String| CliError::BadResponse {
        url: client.url().to_string(),
        what: format!("GET /tx/{hash}?prove=true"),
        reason,
    };
    let proof: InclusionJson = serde_json::from_value(answer["proof"].clone())
        .map_err(|error| bad(format!("no proof ({error})")))?;
    let transaction: cairn_types::SignedTransaction =
        serde_json::from_value(answer["transaction"].clone())
            .map_err(|error| bad(format!("no transaction ({error})")))?;
    if transaction.hash() != *hash {
        return Err(unverified(
            client,
            format!(
                "the transaction served hashes to {}, not {hash}",
                transaction.hash()
            ),
        ));
    }
    let height = proof.header.height.0;
    let (_, verified) = verify_height(client, options, height, |block| {
        if block.header != proof.header {
            return Err(unverified(
                client,
                format!(
                    "the header in the inclusion proof is not the verified header {} of height {height}",
                    block.header.hash()
                ),
            ));
        }
        if !cairn_types::merkle::verify_inclusion(
            &block.header.transactions_root,
            hash,
            proof.index,
            proof.count,
            &proof.path,
        ) {
            return Err(unverified(
                client,
                format!(
                    "the inclusion proof does not lead to the transactions root {} of height {height}",
                    block.header.transactions_root
                ),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(ProvenTransaction {
        hash: *hash,
        height,
        index: proof.index,
        transaction,
        verified,
    })
}

/// What `cairn light init` trusted.
#[derive(Clone, Debug, Serialize)]
pub struct Initialized {
    /// The file written.
    pub file: PathBuf,
    /// The trusted state.
    pub trusted: TrustedState,
}

/// Trusts `genesis` (height 0) for its chain, replacing what was kept.
pub fn init_from_genesis(dir: &Path, genesis: &Genesis) -> Result<Initialized> {
    let state = TrustedState::from_genesis(genesis);
    trusted::save(dir, &state, true)?;
    Ok(Initialized {
        file: trusted::trusted_file(dir, &state.chain_id),
        trusted: state,
    })
}

/// Trusts the block of `height` whose hash is `hash`, as the node at
/// `client` serves it: the header must hash to `hash`, the node's set of
/// the height must hash to what the header names and sign its
/// certificate, and the set of the next height must hash to the header's
/// `next_validator_set_hash`. Replaces what was kept for the chain.
pub async fn init_from_hash(
    client: &NodeClient,
    dir: &Path,
    height: u64,
    hash: &Hash,
) -> Result<Initialized> {
    let source = NodeSource::new(client);
    let header = source.header(height).await?;
    if header.hash() != *hash || header.height != Height(height) {
        return Err(unverified(
            client,
            format!(
                "its header of height {height} hashes to {}, not the trusted hash {hash}",
                header.hash()
            ),
        ));
    }
    let set = source.validators(height).await?;
    if set.hash() != header.validator_set_hash {
        return Err(unverified(
            client,
            format!(
                "the validator set served for height {height} hashes to {}, not the {} the trusted header names",
                set.hash(),
                header.validator_set_hash
            ),
        ));
    }
    let certificate = source.certificate(height).await?;
    if certificate.block_hash != *hash || certificate.height != Height(height) {
        return Err(unverified(
            client,
            format!("the certificate served for height {height} is not of the trusted block"),
        ));
    }
    certificate
        .verify(&header.chain_id, &set)
        .map_err(|error| {
            unverified(
                client,
                format!("the certificate of height {height} does not verify against its validator set: {error}"),
            )
        })?;
    let next_set = if header.next_validator_set_hash == set.hash() {
        set
    } else {
        let next = source.validators(height + 1).await?;
        if next.hash() != header.next_validator_set_hash {
            return Err(unverified(
                client,
                format!(
                    "the validator set served for height {} hashes to {}, not the {} the trusted header names as next",
                    height + 1,
                    next.hash(),
                    header.next_validator_set_hash
                ),
            ));
        }
        next
    };
    let state = TrustedState {
        chain_id: header.chain_id.clone(),
        genesis_hash: None,
        height,
        header_hash: *hash,
        time: header.time,
        next_set,
    };
    trusted::save(dir, &state, true)?;
    Ok(Initialized {
        file: trusted::trusted_file(dir, &state.chain_id),
        trusted: state,
    })
}

#[cfg(test)]
mod tests;
