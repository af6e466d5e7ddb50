//! `cairn-tests`: the deterministic simulator and the multi-process
//! end-to-end tests.
//!
//! The simulator ([`sim`]) runs N validators in one process. Each one is
//! the node's own consensus host (`cairn_node::host::ConsensusHost`, the
//! code `cairnd` runs) over the node's `Ledger` (mempool, block building,
//! validation and commit) and an in-memory `cairn-store` on a `MemoryDisk`
//! that loses unsynced writes in a crash. The simulator implements the
//! host's three interfaces (network, timers, clock) over a simulated
//! network and clock driven by one seed ([`rng`]), so every seed exercises
//! the host's order of persist, broadcast, build/validate and commit.
//! Byzantine validators run the same host behind a transforming network
//! layer. Scenarios ([`scenario`]) derive every fault from the seed;
//! checkers run after every step. See `tests/simulation.rs`.

pub mod rng;
pub mod scenario;
pub mod sim;
