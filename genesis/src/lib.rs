//! `cairn-genesis`: the genesis file schema, its validation, the genesis
//! block and hash, devnet generation and the built-in `dev` chain.
