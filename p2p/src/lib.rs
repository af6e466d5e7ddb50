//! `cairn-p2p`: the libp2p swarm of a Cairn node: discovery, gossip, block
//! sync, limits and peer scoring, behind a `Client` / event-loop API.
