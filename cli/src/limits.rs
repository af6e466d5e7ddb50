//! Every bound the CLI applies to what it reads (files, environment,
//! network) and to how long it waits, defined once.

use std::time::Duration;

/// Largest HTTP response body read from a node. A block of the largest
/// size ([`cairn_types::limits::BLOCK_TRANSACTIONS_MAX`] hashes of 64 hex
/// characters plus its header and certificate) stays well below it.
pub const RPC_RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest WebSocket message accepted from `/ws` (one `new_block` event with
/// up to [`cairn_types::limits::BLOCK_TRANSACTIONS_MAX`] transaction hashes).
pub const WS_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest WebSocket frame accepted from `/ws`.
pub const WS_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Time allowed to open a TCP connection to a node.
pub const RPC_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for one HTTP request to a node, connection included.
pub const RPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `cairn tx send --wait` asks `GET /tx/{hash}` besides
/// listening to the WebSocket.
pub const TX_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Default of `cairn tx send --wait --timeout`.
pub const TX_WAIT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Longest `--timeout` accepted.
pub const TX_WAIT_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest key name, in bytes.
pub const KEY_NAME_BYTES_MAX: usize = 64;

/// Largest key file read from the keyring.
pub const KEY_FILE_BYTES_MAX: usize = 16 * 1024;

/// Largest `--secret-file` read by `cairn keys import`.
pub const SECRET_FILE_BYTES_MAX: usize = 1024;

/// Largest passphrase (from `--passphrase-file` or `CAIRN_PASSPHRASE`).
pub const PASSPHRASE_BYTES_MAX: usize = 1024;

/// Most keys `cairn keys list` reads from a keyring directory.
pub const KEYRING_KEYS_MAX: usize = 100_000;

/// Argon2id memory cost of new encrypted keys, in KiB (64 MiB, RFC 9106's
/// second recommended setting).
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;

/// Argon2id passes over memory of new encrypted keys.
pub const KDF_ITERATIONS: u32 = 3;

/// Argon2id lanes of new encrypted keys.
pub const KDF_PARALLELISM: u32 = 1;

/// Highest Argon2id memory cost accepted from a key file, in KiB (1 GiB),
/// so a tampered file cannot make the CLI allocate without bound.
pub const KDF_MEMORY_KIB_MAX: u32 = 1024 * 1024;

/// Highest Argon2id pass count accepted from a key file.
pub const KDF_ITERATIONS_MAX: u32 = 64;

/// Highest Argon2id lane count accepted from a key file.
pub const KDF_PARALLELISM_MAX: u32 = 16;

/// Most validators `cairn devnet up --validators` starts.
pub const DEVNET_VALIDATORS_MAX: usize = 64;

/// Most full nodes `cairn devnet up --full-nodes` starts.
pub const DEVNET_FULL_NODES_MAX: usize = 64;

/// Most funded accounts `cairn devnet up --accounts` creates (each is a key
/// file in the devnet and one in the keyring; indices stay below 1000, so
/// key names stay within [`KEY_NAME_BYTES_MAX`]).
pub const DEVNET_ACCOUNTS_MAX: usize = 1_000;

/// Most accounts `cairn devnet up --bench-accounts` funds for `cairn bench`.
pub const DEVNET_BENCH_ACCOUNTS_MAX: usize = 20_000;

/// Ports reserved for each devnet node from `--base-port` (p2p, RPC,
/// metrics, and room for more).
pub const DEVNET_PORTS_PER_NODE: u16 = 10;

/// Largest `devnet.json` read.
pub const DEVNET_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Time allowed for one `cairnd init|show-validator|show-node-id` run.
pub const DEVNET_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of a `cairnd init|show-*` output kept for an error message.
pub const DEVNET_COMMAND_OUTPUT_BYTES_MAX: usize = 4 * 1024;

/// How long `cairn devnet up` waits for every node to answer and for
/// blocks to be committed.
pub const DEVNET_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often `cairn devnet up` asks the nodes while waiting for blocks, and
/// how often the foreground status line is refreshed.
pub const DEVNET_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// When standard output is not a terminal, the foreground status line is
/// printed once per this interval instead of being redrawn every second.
pub const DEVNET_STATUS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Time allowed for one node's `GET /status` in `devnet up|status`, so a
/// stuck node cannot hold up the others.
pub const DEVNET_STATUS_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long `devnet down` (and Ctrl-C of `devnet up`) waits for nodes to
/// exit after SIGTERM before sending SIGKILL. A node takes up to three
/// 5-second grace periods (servers, consensus, p2p) to stop.
pub const DEVNET_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long to wait for nodes to disappear after SIGKILL.
pub const DEVNET_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a stopping node is checked for having exited.
pub const DEVNET_STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Lines of a node's log quoted when it fails to start.
pub const DEVNET_LOG_TAIL_LINES: usize = 20;

/// Bytes read from the end of a node's log to find those lines.
pub const DEVNET_LOG_TAIL_BYTES_MAX: u64 = 16 * 1024;

/// Most blocks whose transactions the foreground status line counts per
/// refresh (beyond it, tx/s is left out for that second).
pub const DEVNET_STATUS_BLOCKS_MAX: u64 = 50;

/// Default of `--max-age` (`cairn query ... --verify`): the oldest a
/// verified header may be before the answer is refused as stale.
pub const LIGHT_MAX_AGE_DEFAULT: Duration = Duration::from_secs(60 * 60);

/// Longest `--max-age` accepted (30 days).
pub const LIGHT_MAX_AGE_MAX: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How long `--witness` waits for a witness that has not reached the
/// verified height yet.
pub const WITNESS_WAIT: Duration = Duration::from_secs(5);

/// Default of `--trusting-period`: how old a trusted state may be and
/// still be verified from (two weeks; keep it below the chain's unbonding
/// period in time).
pub const LIGHT_TRUSTING_PERIOD_DEFAULT: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Longest `--trusting-period` accepted (ten years: in effect, none).
pub const LIGHT_TRUSTING_PERIOD_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
