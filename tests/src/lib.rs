//! `cairn-tests`: the deterministic simulator and the multi-process
//! end-to-end tests.
