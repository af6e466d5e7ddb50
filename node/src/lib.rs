//! `cairn-node`: config, mempool, the consensus host, block sync, RPC,
//! metrics, start-up and shutdown of the `cairnd` node.
