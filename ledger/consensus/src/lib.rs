//! `cairn-consensus`: Tendermint (Buchman, Kwon, Milosevic, arXiv:1807.04938,
//! Algorithm 1) as a pure, deterministic state machine.
