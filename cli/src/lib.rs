//! `cairn-cli`: keys, transfers, queries, the local devnet and the load
//! generator, talking to nodes only through their public RPC.
