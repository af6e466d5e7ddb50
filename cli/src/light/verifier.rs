//! Skipping verification of headers, in the style of CometBFT's light
//! client: from a [`TrustedState`] to a target height, fetching as few
//! headers as the validator-set changes allow.
//!
//! # One step: trusted height T to height H
//!
//! - H = T + 1 (adjacent): H's header must name T's block as parent and
//!   the set T named as next; its certificate must be signed by more than
//!   two thirds of that set.
//! - H > T + 1 (skipping): H's validator set is fetched and must hash to
//!   what H's header names; H's certificate must be signed by more than
//!   two thirds of it, and validators of the trusted set (the set of
//!   T + 1) holding more than one third of *its* power must be among the
//!   signers. At least one of those is honest (the one-third bound of
//!   STAKING.md), so H is on the trusted chain. When that fails for lack
//!   of trusted signers, the verifier bisects: it verifies the midpoint
//!   first, then tries H again from there.
//!
//! Every accepted step also fixes the set of H + 1 (fetched when it
//! differs from H's, and checked against the header's
//! `next_validator_set_hash`). A height at or below T is verified
//! backwards through parent hashes from T's block. Nothing here writes
//! the trusted state: the caller keeps the result once everything else
//! (proof, freshness, witness) verified too.

use std::collections::HashMap;

use cairn_types::{CommitCertificate, Hash, Header, Height, ValidatorSet, VotingPower};
use serde::Serialize;

use super::trusted::TrustedState;
use crate::error::{CliError, Result};

/// Most verification steps (certificate checks) one run may take; a jump
/// needing more (a chain whose sets changed entirely many times since the
/// trusted height) is refused with a hint to trust a later height.
pub const LIGHT_STEPS_MAX: u64 = 4_096;

/// Most headers walked back from the trusted height to an older target.
pub const LIGHT_BACKWARD_HEADERS_MAX: u64 = 10_000;

/// Where headers, certificates and validator sets come from (a node, or
/// a test chain).
pub trait Source {
    /// The name used in messages (the node's URL).
    fn name(&self) -> &str;
    /// The header of `height`.
    fn header(&self, height: u64) -> impl std::future::Future<Output = Result<Header>>;
    /// The commit certificate of `height`.
    fn certificate(
        &self,
        height: u64,
    ) -> impl std::future::Future<Output = Result<CommitCertificate>>;
    /// The validator set of `height` (unverified: the caller checks its hash).
    fn validators(&self, height: u64) -> impl std::future::Future<Output = Result<ValidatorSet>>;
}

/// What a run fetched and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Headers fetched.
    pub headers: u64,
    /// Certificates fetched.
    pub certificates: u64,
    /// Validator sets fetched.
    pub validator_sets: u64,
    /// Verification steps taken (a bisection adds one).
    pub steps: u64,
    /// Times a jump lacked trusted signers and was split.
    pub bisections: u64,
}

/// A verified height: its header, certificate, the set that signed it and
/// how much of that set signed.
#[derive(Clone, Debug)]
pub struct LightBlock {
    /// The header.
    pub header: Header,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
    /// Its validator set (the header's `validator_set_hash`).
    pub set: ValidatorSet,
    /// Validators whose signature is in the certificate.
    pub signers: usize,
    /// Their power.
    pub signed_power: u64,
}

impl LightBlock {
    /// The signed share of the set's power, in percent.
    pub fn signed_percent(&self) -> f64 {
        let total = self.set.total_power().0.max(1);
        self.signed_power as f64 * 100.0 / total as f64
    }
}

/// Why one step did not go through.
enum StepError {
    /// Too little of the trusted set signed: bisect.
    NotEnoughTrust,
    /// Something did not verify (or could not be fetched): stop.
    Failed(CliError),
}

impl From<CliError> for StepError {
    fn from(error: CliError) -> StepError {
        StepError::Failed(error)
    }
}

/// Verifies heights against a trusted state, fetching from one source,
/// each header, certificate and set at most once.
pub struct Verifier<'a, S: Source> {
    source: &'a S,
    headers: HashMap<u64, Header>,
    certificates: HashMap<u64, CommitCertificate>,
    sets: HashMap<u64, ValidatorSet>,
    stats: Stats,
    steps_max: u64,
}

impl<'a, S: Source> Verifier<'a, S> {
    /// A verifier over `source`.
    pub fn new(source: &'a S) -> Verifier<'a, S> {
        Verifier {
            source,
            headers: HashMap::new(),
            certificates: HashMap::new(),
            sets: HashMap::new(),
            stats: Stats::default(),
            steps_max: LIGHT_STEPS_MAX,
        }
    }

    /// The same with another bound on the steps than [`LIGHT_STEPS_MAX`].
    pub fn with_steps_max(mut self, steps_max: u64) -> Verifier<'a, S> {
        self.steps_max = steps_max;
        self
    }

    /// What was fetched and checked so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn unverified(&self, height: u64, reason: String) -> CliError {
        CliError::Unverified {
            url: self.source.name().to_string(),
            reason: format!("height {height}: {reason}"),
        }
    }

    async fn header(&mut self, height: u64) -> Result<Header> {
        if let Some(header) = self.headers.get(&height) {
            return Ok(header.clone());
        }
        let header = self.source.header(height).await?;
        self.stats.headers += 1;
        self.headers.insert(height, header.clone());
        Ok(header)
    }

    async fn certificate(&mut self, height: u64) -> Result<CommitCertificate> {
        if let Some(certificate) = self.certificates.get(&height) {
            return Ok(certificate.clone());
        }
        let certificate = self.source.certificate(height).await?;
        self.stats.certificates += 1;
        self.certificates.insert(height, certificate.clone());
        Ok(certificate)
    }

    /// The set of `height`, checked to hash to `expected` (what a verified
    /// or being-verified header names); `known` is used instead of a fetch
    /// when it already has that hash.
    async fn set(
        &mut self,
        height: u64,
        expected: &Hash,
        known: Option<&ValidatorSet>,
        named_by: &str,
    ) -> Result<ValidatorSet> {
        if let Some(set) = known.filter(|set| set.hash() == *expected) {
            return Ok(set.clone());
        }
        let set = match self.sets.get(&height) {
            Some(set) => set.clone(),
            None => {
                let set = self.source.validators(height).await?;
                self.stats.validator_sets += 1;
                self.sets.insert(height, set.clone());
                set
            }
        };
        if set.hash() != *expected {
            return Err(self.unverified(
                height,
                format!(
                    "the validator set served for height {height} hashes to {}, not the {expected} {named_by} names",
                    set.hash()
                ),
            ));
        }
        Ok(set)
    }

    /// The header and certificate of `height`, checked to belong together
    /// and to the trusted chain id, and later than `after` in time.
    async fn header_and_certificate(
        &mut self,
        trusted: &TrustedState,
        height: u64,
    ) -> Result<(Header, CommitCertificate)> {
        let header = self.header(height).await?;
        let certificate = self.certificate(height).await?;
        if header.height != Height(height) || header.chain_id != trusted.chain_id {
            return Err(self.unverified(
                height,
                format!(
                    "the header served is of height {} on chain {:?}, not of height {height} on chain {:?}",
                    header.height.0,
                    header.chain_id.as_str(),
                    trusted.chain_id.as_str()
                ),
            ));
        }
        if certificate.height != Height(height) || certificate.block_hash != header.hash() {
            return Err(self.unverified(
                height,
                format!(
                    "the certificate served signs block {} at height {}, not the header served ({})",
                    certificate.block_hash,
                    certificate.height.0,
                    header.hash()
                ),
            ));
        }
        Ok((header, certificate))
    }

    /// One step from `trusted` to `height` (> trusted.height).
    async fn step(
        &mut self,
        trusted: &TrustedState,
        height: u64,
    ) -> std::result::Result<(TrustedState, LightBlock), StepError> {
        let (header, certificate) = self.header_and_certificate(trusted, height).await?;
        if header.time <= trusted.time {
            return Err(self
                .unverified(
                    height,
                    format!(
                        "the header's time {} ms is not after the trusted height {}'s {} ms",
                        header.time.0, trusted.height, trusted.time.0
                    ),
                )
                .into());
        }
        let adjacent = height == trusted.height + 1;
        let set = if adjacent {
            if header.parent_hash != trusted.header_hash {
                return Err(self
                    .unverified(
                        height,
                        format!(
                            "the header's parent {} is not the trusted block {} of height {}",
                            header.parent_hash, trusted.header_hash, trusted.height
                        ),
                    )
                    .into());
            }
            if header.validator_set_hash != trusted.next_set.hash() {
                return Err(self
                    .unverified(
                        height,
                        format!(
                            "the header names validator set {} but the trusted height {} names {}",
                            header.validator_set_hash,
                            trusted.height,
                            trusted.next_set.hash()
                        ),
                    )
                    .into());
            }
            trusted.next_set.clone()
        } else {
            self.set(
                height,
                &header.validator_set_hash,
                Some(&trusted.next_set),
                "its header",
            )
            .await?
        };
        let signed_power = certificate
            .verify(&trusted.chain_id, &set)
            .map_err(|error| {
                self.unverified(
                    height,
                    format!(
                        "the certificate does not verify against the validator set {} the header names: {error}",
                        set.hash()
                    ),
                )
            })?;
        if !adjacent {
            // Every signature verified above; count the trusted set's
            // power among the signers, by key.
            let mut trusted_power = 0u128;
            for signature in &certificate.signatures {
                let Some(signer) = set.get(signature.validator) else {
                    continue;
                };
                if let Some(index) = trusted.next_set.index_of(&signer.public_key) {
                    if let Some(member) = trusted.next_set.get(index) {
                        trusted_power += u128::from(member.power.0);
                    }
                }
            }
            let trusted_power = VotingPower(u64::try_from(trusted_power).unwrap_or(u64::MAX));
            if !trusted.next_set.is_one_third(trusted_power) {
                return Err(StepError::NotEnoughTrust);
            }
        }
        let next_set = self
            .set(
                height + 1,
                &header.next_validator_set_hash,
                Some(&set),
                &format!("the header of height {height}"),
            )
            .await?;
        let next = TrustedState {
            chain_id: trusted.chain_id.clone(),
            genesis_hash: trusted.genesis_hash,
            height,
            header_hash: header.hash(),
            time: header.time,
            next_set,
        };
        let block = LightBlock {
            signers: certificate.signatures.len(),
            signed_power: signed_power.0,
            header,
            certificate,
            set,
        };
        Ok((next, block))
    }

    /// Verifies `target` from `start`: skipping forward (bisecting where
    /// the trusted set's signers do not reach one third) when `target` is
    /// above the trusted height, back through parent hashes otherwise.
    /// Returns the new trusted state (`start` itself for a height at or
    /// below it) and the verified block of `target`.
    pub async fn verify_to(
        &mut self,
        start: &TrustedState,
        target: u64,
    ) -> Result<(TrustedState, LightBlock)> {
        if target == 0 {
            return Err(self.unverified(
                0,
                "the answer is of the genesis state (height 0): there is no block to verify it by"
                    .into(),
            ));
        }
        if target <= start.height {
            let block = self.verify_backward(start, target).await?;
            return Ok((start.clone(), block));
        }
        let mut trusted = start.clone();
        let mut pending = vec![target];
        let mut verified = None;
        while let Some(&height) = pending.last() {
            self.stats.steps += 1;
            if self.stats.steps > self.steps_max {
                return Err(self.unverified(
                    target,
                    format!(
                        "reaching it from the trusted height {} takes more than {} verification steps (the validators changed too much in between); trust a later height with `cairn light init --trusted-height H --trusted-hash HASH`",
                        start.height, self.steps_max
                    ),
                ));
            }
            match self.step(&trusted, height).await {
                Ok((next, block)) => {
                    trusted = next;
                    pending.pop();
                    verified = Some(block);
                }
                Err(StepError::NotEnoughTrust) => {
                    // Not adjacent (an adjacent step never lacks trust), so
                    // the midpoint lies strictly between.
                    self.stats.bisections += 1;
                    pending.push(trusted.height + (height - trusted.height) / 2);
                }
                Err(StepError::Failed(error)) => return Err(error),
            }
        }
        match verified {
            Some(block) => Ok((trusted, block)),
            None => Err(self.unverified(target, "nothing was verified".into())),
        }
    }

    /// Verifies `target` (at or below the trusted height) through parent
    /// hashes back from the trusted block, then its certificate against
    /// its own set (for the signer count).
    async fn verify_backward(&mut self, start: &TrustedState, target: u64) -> Result<LightBlock> {
        if start.height - target > LIGHT_BACKWARD_HEADERS_MAX {
            return Err(self.unverified(
                target,
                format!(
                    "it is more than {LIGHT_BACKWARD_HEADERS_MAX} heights below the trusted height {}; ask a node for a newer answer, or trust an older height with `cairn light init`",
                    start.height
                ),
            ));
        }
        let mut expected = start.header_hash;
        let mut height = start.height;
        let header = loop {
            let header = self.header(height).await?;
            if header.hash() != expected || header.height != Height(height) {
                return Err(self.unverified(
                    height,
                    format!(
                        "the header served hashes to {}, but the trusted chain names block {expected}",
                        header.hash()
                    ),
                ));
            }
            if height == target {
                break header;
            }
            expected = header.parent_hash;
            height -= 1;
        };
        let (_, certificate) = self.header_and_certificate(start, target).await?;
        let set = self
            .set(
                target,
                &header.validator_set_hash,
                None,
                "its verified header",
            )
            .await?;
        let signed_power = certificate.verify(&start.chain_id, &set).map_err(|error| {
            self.unverified(
                target,
                format!("the certificate does not verify against its validator set: {error}"),
            )
        })?;
        Ok(LightBlock {
            signers: certificate.signatures.len(),
            signed_power: signed_power.0,
            header,
            certificate,
            set,
        })
    }
}
