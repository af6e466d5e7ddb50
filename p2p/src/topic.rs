//! Gossip topics, namespaced by chain id and protocol version so that two
//! chains, or two incompatible versions, never share a mesh.

use libp2p::gossipsub::{IdentTopic, TopicHash};

/// Version of the gossip payload formats; part of every topic name.
pub const GOSSIP_PROTOCOL_VERSION: u32 = 1;

/// The kinds of gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Batches of transactions from mempools.
    Transactions,
    /// Proposals (with their block) and votes.
    Consensus,
    /// Evidence of misbehaviour (equivocation).
    Evidence,
    /// Decisions: commit certificates with the block hash, for full nodes.
    Decisions,
}

impl Topic {
    /// Every topic, in a fixed order.
    pub const ALL: [Topic; 4] = [
        Topic::Transactions,
        Topic::Consensus,
        Topic::Evidence,
        Topic::Decisions,
    ];

    /// The short name used in the topic string.
    pub fn short_name(self) -> &'static str {
        match self {
            Topic::Transactions => "tx",
            Topic::Consensus => "consensus",
            Topic::Evidence => "evidence",
            Topic::Decisions => "decisions",
        }
    }

    /// The full topic string: `/cairn/<chain-id>/<kind>/<version>`.
    pub fn name(self, chain_id: &str) -> String {
        format!(
            "/cairn/{chain_id}/{}/{GOSSIP_PROTOCOL_VERSION}",
            self.short_name()
        )
    }

    /// The gossipsub topic.
    pub(crate) fn ident(self, chain_id: &str) -> IdentTopic {
        IdentTopic::new(self.name(chain_id))
    }

    /// The topic whose hash this is, for this chain.
    pub(crate) fn from_hash(hash: &TopicHash, chain_id: &str) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| t.ident(chain_id).hash() == *hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced() {
        assert_eq!(Topic::Transactions.name("dev"), "/cairn/dev/tx/1");
        let hash = Topic::Decisions.ident("dev").hash();
        assert_eq!(Topic::from_hash(&hash, "dev"), Some(Topic::Decisions));
        assert_eq!(Topic::from_hash(&hash, "other"), None);
    }
}
