//! A light client: checks what one node says against a genesis the user
//! trusts, so the CLI never has to trust the node it talks to.
//!
//! [`follow_headers`] walks the chain from genesis to a height, one
//! header at a time: each header must name the parent's hash and the set
//! its parent named as next (the genesis set at height 1), and its commit
//! certificate must verify against that set; when a header names a new
//! next set, the set is fetched (`GET /validators?height=`) and must hash
//! to the name. [`verify_account`] then checks an account proof
//! (`GET /account/{address}?prove=true`) against the state root of the
//! verified header, and [`verify_transaction`] an inclusion proof
//! (`GET /tx/{hash}?prove=true`) against its transactions root. The walk costs two requests and one certificate check
//! per height; the one-third bound on set changes (STAKING.md) would let a
//! later version skip headers. What was verified (the height, its hash and
//! the set of the next height) is kept per chain in a light directory
//! ([`default_light_dir`]), so the next walk starts there.

use cairn_genesis::Genesis;
use cairn_state::{verify_in_state, Account, AccountProof};
use cairn_types::{
    Address, CommitCertificate, Hash, Header, Height, PublicKey, Validator, ValidatorSet,
    VotingPower,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest trusted-state file read back.
pub const TRUSTED_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// What a light client verified of one chain, kept between runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Trusted {
    chain_id: String,
    genesis_hash: Hash,
    /// The verified height.
    height: u64,
    /// Its block hash.
    header_hash: Hash,
    /// The set of the height after it (named by the verified header).
    next_set: ValidatorSet,
}

/// The light directory: `$CAIRN_LIGHT_DIR`, else `$XDG_DATA_HOME/cairn/light`,
/// else `~/.cairn-light`; `None` without a home.
pub fn default_light_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_LIGHT_DIR").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        if data.is_absolute() {
            return Some(data.join("cairn").join("light"));
        }
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".cairn-light"))
}

fn trusted_file(dir: &Path, genesis: &Genesis) -> PathBuf {
    dir.join(format!("{}.json", genesis.hash().to_hex()))
}

/// The trusted state of `genesis`'s chain in `dir`, if one is there, of
/// this chain, and not beyond `height`. Anything unreadable is ignored
/// (the walk then starts at the genesis).
fn load_trusted(dir: Option<&Path>, genesis: &Genesis, height: u64) -> Option<Trusted> {
    let path = trusted_file(dir?, genesis);
    let length = std::fs::metadata(&path).ok()?.len();
    if length > TRUSTED_FILE_BYTES_MAX {
        return None;
    }
    let trusted: Trusted = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    (trusted.chain_id == genesis.chain_id.as_str()
        && trusted.genesis_hash == genesis.hash()
        && trusted.height <= height)
        .then_some(trusted)
}

/// Keeps `trusted` for the next walk (written to a temporary file, then
/// renamed); a failure is only reported.
fn save_trusted(dir: Option<&Path>, genesis: &Genesis, trusted: &Trusted) {
    let Some(dir) = dir else { return };
    let path = trusted_file(dir, genesis);
    let temporary = path.with_extension("json.tmp");
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| {
            std::fs::write(
                &temporary,
                serde_json::to_vec_pretty(trusted).unwrap_or_default(),
            )
        })
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        eprintln!(
            "note: cannot keep the verified height in {} ({error}); the next check starts at the genesis again",
            path.display()
        );
    }
}

use crate::{
    error::{CliError, Result},
    rpc::{NodeClient, Validators},
};

/// What the light client verified.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The height verified up to.
    pub height: u64,
    /// The height the walk started from (0: the genesis; more: a height
    /// verified by an earlier run, from the light directory).
    pub from_height: u64,
    /// Headers checked by this run.
    pub headers: u64,
    /// Validator set changes followed.
    pub set_changes: u64,
    /// The hash of the verified header.
    pub header_hash: Hash,
}

/// The proof part of `GET /account/{address}?prove=true`.
#[derive(Clone, Debug, Deserialize)]
struct ProofJson {
    height: u64,
    balance: u64,
    nonce: u64,
    account_proof: AccountProof,
    staking_hash: Hash,
    header: Header,
    certificate: CommitCertificate,
}

/// The proof part of `GET /tx/{hash}?prove=true`.
#[derive(Clone, Debug, Deserialize)]
struct InclusionJson {
    index: u64,
    count: u64,
    path: Vec<Hash>,
    header: Header,
}

/// A proven transaction.
#[derive(Clone, Debug, Serialize)]
pub struct ProvenTransaction {
    /// Its hash.
    pub hash: Hash,
    /// The height of its block.
    pub height: u64,
    /// Its position in the block.
    pub index: u64,
    /// The transaction itself, checked to have `hash`.
    pub transaction: cairn_types::SignedTransaction,
    /// What was verified.
    pub verified: Verified,
}

/// Fetches transaction `hash` with its inclusion proof and verifies it
/// (and every header up to its block) against `genesis`.
pub async fn verify_transaction(
    client: &NodeClient,
    genesis: &Genesis,
    hash: &Hash,
    light_dir: Option<&Path>,
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
    let (header, verified) = follow_headers(client, genesis, height, light_dir).await?;
    if header != proof.header {
        return Err(unverified(
            client,
            "the proof's header is not the verified header of its height".into(),
        ));
    }
    if !cairn_types::merkle::verify_inclusion(
        &header.transactions_root,
        hash,
        proof.index,
        proof.count,
        &proof.path,
    ) {
        return Err(unverified(
            client,
            format!(
                "the inclusion proof does not lead to the transactions root {} of height {height}",
                header.transactions_root
            ),
        ));
    }
    Ok(ProvenTransaction {
        hash: *hash,
        height,
        index: proof.index,
        transaction,
        verified,
    })
}

/// A proven account.
#[derive(Clone, Debug, Serialize)]
pub struct ProvenAccount {
    /// The address.
    pub address: String,
    /// The proven balance.
    pub balance: u64,
    /// The proven nonce.
    pub nonce: u64,
    /// What was verified.
    pub verified: Verified,
}

fn unverified(client: &NodeClient, reason: String) -> CliError {
    CliError::Unverified {
        url: client.url().to_string(),
        reason,
    }
}

/// The validator set a `GET /validators` answer describes, in index order.
fn set_of(client: &NodeClient, answer: &Validators) -> Result<ValidatorSet> {
    let mut members: Vec<_> = answer.validators.iter().collect();
    members.sort_by_key(|member| member.index);
    let validators = members
        .into_iter()
        .map(|member| {
            Ok(Validator {
                name: member.name.clone(),
                public_key: PublicKey::from_hex(&member.public_key)
                    .map_err(|error| unverified(client, format!("a set member's key: {error}")))?,
                power: VotingPower(member.power),
                operator: Address::from_bech32(&member.address).map_err(|error| {
                    unverified(client, format!("a set member's operator: {error}"))
                })?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ValidatorSet::new(validators).map_err(|error| unverified(client, error.to_string()))
}

/// Verifies the headers up to `height` from `genesis` (or from the height
/// an earlier run verified, kept in `light_dir`); returns the verified
/// header of `height`.
pub async fn follow_headers(
    client: &NodeClient,
    genesis: &Genesis,
    height: u64,
    light_dir: Option<&Path>,
) -> Result<(Header, Verified)> {
    let resumed = load_trusted(light_dir, genesis, height.saturating_sub(1));
    let (mut trusted, mut parent_hash, from_height) = match resumed {
        Some(state) => (state.next_set, state.header_hash, state.height),
        None => (genesis.validators.clone(), genesis.hash(), 0),
    };
    let mut set_changes = 0;
    let mut last: Option<Header> = None;
    for current in from_height + 1..=height {
        let (header_path, certificate_path) = (
            format!("/header/{current}"),
            format!("/certificate/{current}"),
        );
        let ((header, _), (certificate, _)) = tokio::try_join!(
            client.get::<Header>(&header_path),
            client.get::<CommitCertificate>(&certificate_path),
        )?;
        let at = |reason: String| unverified(client, format!("height {current}: {reason}"));
        if header.height != Height(current) || header.chain_id != genesis.chain_id {
            return Err(at("the header is of another height or chain".into()));
        }
        if header.parent_hash != parent_hash {
            return Err(at(format!(
                "the header's parent {} is not the verified block {parent_hash}",
                header.parent_hash
            )));
        }
        if header.validator_set_hash != trusted.hash() {
            return Err(at(format!(
                "the header names validator set {} but the verified chain says {}",
                header.validator_set_hash,
                trusted.hash()
            )));
        }
        let hash = header.hash();
        if certificate.height != Height(current) || certificate.block_hash != hash {
            return Err(at("the certificate is not of this header".into()));
        }
        certificate
            .verify(&genesis.chain_id, &trusted)
            .map_err(|error| at(format!("the certificate: {error}")))?;
        if header.next_validator_set_hash != trusted.hash() {
            let (answer, _) = client.validators(Some(current + 1)).await?;
            let next = set_of(client, &answer)?;
            if next.hash() != header.next_validator_set_hash {
                return Err(at(format!(
                    "the set served for height {} hashes to {}, not the {} its parent names",
                    current + 1,
                    next.hash(),
                    header.next_validator_set_hash
                )));
            }
            trusted = next;
            set_changes += 1;
        }
        parent_hash = hash;
        last = Some(header);
    }
    let header = last.ok_or_else(|| {
        unverified(
            client,
            "the state is the genesis state (height 0): nothing to verify".into(),
        )
    })?;
    save_trusted(
        light_dir,
        genesis,
        &Trusted {
            chain_id: genesis.chain_id.to_string(),
            genesis_hash: genesis.hash(),
            height,
            header_hash: parent_hash,
            next_set: trusted,
        },
    );
    let verified = Verified {
        height,
        from_height,
        headers: height - from_height,
        set_changes,
        header_hash: parent_hash,
    };
    Ok((header, verified))
}

/// Fetches `address`'s account with a proof and verifies it (and every
/// header up to the proof's height) against `genesis`.
pub async fn verify_account(
    client: &NodeClient,
    genesis: &Genesis,
    address: &Address,
    light_dir: Option<&Path>,
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
    let (header, verified) = follow_headers(client, genesis, proof.height, light_dir).await?;
    if header != proof.header || proof.certificate.block_hash != header.hash() {
        return Err(unverified(
            client,
            "the proof's header is not the verified header of its height".into(),
        ));
    }
    let account = Account {
        balance: proof.balance,
        nonce: proof.nonce,
    };
    if !verify_in_state(
        &header.state_root,
        &proof.staking_hash,
        address,
        &account,
        &proof.account_proof,
    ) {
        return Err(unverified(
            client,
            format!(
                "the account proof does not lead to the state root {} of height {}",
                header.state_root, proof.height
            ),
        ));
    }
    Ok(ProvenAccount {
        address: address.to_string(),
        balance: proof.balance,
        nonce: proof.nonce,
        verified,
    })
}
