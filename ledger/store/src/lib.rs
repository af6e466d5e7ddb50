//! `cairn-store`: the `Store` trait, its RocksDB implementation, an in-memory
//! implementation for the simulator, the consensus WAL and the indexes.
