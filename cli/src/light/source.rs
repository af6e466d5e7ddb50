//! A node as the light client's [`Source`]: `GET /header/{h}`,
//! `GET /certificate/{h}` and `GET /validators?height=h`, decoded but not
//! trusted (the verifier checks everything).

use cairn_types::{
    Address, CommitCertificate, Header, PublicKey, Validator, ValidatorSet, VotingPower,
};

use super::verifier::Source;
use crate::{
    error::{CliError, Result},
    rpc::{NodeClient, Validators},
};

/// A node the light client reads from.
pub struct NodeSource<'a> {
    client: &'a NodeClient,
}

impl<'a> NodeSource<'a> {
    /// Reads from `client`'s node.
    pub fn new(client: &'a NodeClient) -> NodeSource<'a> {
        NodeSource { client }
    }
}

impl Source for NodeSource<'_> {
    fn name(&self) -> &str {
        self.client.url()
    }

    async fn header(&self, height: u64) -> Result<Header> {
        Ok(self.client.get(&format!("/header/{height}")).await?.0)
    }

    async fn certificate(&self, height: u64) -> Result<CommitCertificate> {
        Ok(self.client.get(&format!("/certificate/{height}")).await?.0)
    }

    async fn validators(&self, height: u64) -> Result<ValidatorSet> {
        let (answer, _) = self.client.validators(Some(height)).await?;
        set_of(self.client, &answer)
    }
}

/// The validator set a `GET /validators` answer describes, in index order.
pub fn set_of(client: &NodeClient, answer: &Validators) -> Result<ValidatorSet> {
    let bad = |reason: String| CliError::Unverified {
        url: client.url().to_string(),
        reason: format!("the validator set of height {}: {reason}", answer.height),
    };
    let mut members: Vec<_> = answer.validators.iter().collect();
    members.sort_by_key(|member| member.index);
    let validators = members
        .into_iter()
        .map(|member| {
            Ok(Validator {
                name: member.name.clone(),
                public_key: PublicKey::from_hex(&member.public_key)
                    .map_err(|error| bad(format!("a member's key: {error}")))?,
                power: VotingPower(member.power),
                operator: Address::from_bech32(&member.address)
                    .map_err(|error| bad(format!("a member's operator: {error}")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ValidatorSet::new(validators).map_err(|error| bad(error.to_string()))
}
