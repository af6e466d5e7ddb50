//! `cairn-tests`: the deterministic simulator and the multi-process
//! end-to-end tests.
//!
//! The simulator ([`sim`]) runs N validators in one process, each made of
//! the real `cairn-consensus` driver, the real `cairn-state` ledger and the
//! in-memory `cairn-store`, over a simulated network and clock driven by
//! one seed ([`rng`]). Scenarios ([`scenario`]) derive every fault from the
//! seed; checkers run after every step. See `tests/simulation.rs`.

pub mod rng;
pub mod scenario;
pub mod sim;
