//! `cairn-state`: accounts, the validity rules of transfers, block execution
//! and the authenticated state root. Deterministic: no clock, no I/O.
