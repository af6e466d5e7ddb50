//! The one error type of `cairn-cli`. Every message says what was wrong,
//! with the value at fault, and what to do about it.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in a `cairn` command.
#[derive(Debug, Error)]
pub enum CliError {
    /// `cairn bench` cannot run as asked.
    #[error("bench: {reason}")]
    Bench {
        /// What is wrong and what to do.
        reason: String,
    },
    /// A key name outside the allowed charset or length.
    #[error("bad key name {name:?}: {reason}")]
    BadKeyName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No key of that name in the keyring.
    #[error("no key named {name:?} in {dir}; {known}")]
    UnknownKey {
        /// The name asked for.
        name: String,
        /// The keyring directory.
        dir: PathBuf,
        /// The known names, or a hint to create one.
        known: String,
    },
    /// An account argument that is neither an address nor a known key.
    #[error(
        "{what} {name:?} is not an address (cairn1...) and not a key in the keyring: {reason}"
    )]
    UnknownAccount {
        /// The argument (`--to`, `ADDRESS`).
        what: String,
        /// The name as given.
        name: String,
        /// Why the key was not found.
        reason: String,
    },
    /// A key of that name already exists.
    #[error("a key named {name:?} already exists ({path}); choose another name, or delete it first with `cairn keys delete {name}`")]
    KeyExists {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
    },
    /// A key is encrypted and no passphrase was given.
    #[error("key {name:?} is encrypted; pass --passphrase-file FILE or set CAIRN_PASSPHRASE (on a terminal, cairn asks for it)")]
    PassphraseRequired {
        /// The key's name.
        name: String,
    },
    /// The passphrase does not open the key (or the file was altered).
    #[error("wrong passphrase for key {name:?} (or its file {path} was altered); check --passphrase-file / CAIRN_PASSPHRASE")]
    WrongPassphrase {
        /// The key's name.
        name: String,
        /// Its file.
        path: PathBuf,
    },
    /// A passphrase that cannot be used.
    #[error("bad passphrase from {source_name}: {reason}")]
    BadPassphrase {
        /// Where it came from (a file path or the environment variable).
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file that cannot be understood.
    #[error("key file {path} is corrupted: {reason}; restore it from a backup or delete it with `cairn keys delete`")]
    CorruptKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file other users can read.
    #[error("key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    InsecureKeyFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret key file for `keys import` that does not hold a seed.
    #[error("secret file {path} does not hold a secret key: {reason}; it must hold 64 hex characters (the 32-byte seed, as printed by `cairn keys export`)")]
    BadSecretFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A destructive action asked for without `--yes` where nobody can
    /// be asked.
    #[error("refusing to {action} without confirmation: standard input is not a terminal, so cairn cannot ask; pass --yes to {action}")]
    ConfirmationRequired {
        /// What would have been done.
        action: String,
    },
    /// The person at the terminal did not answer yes.
    #[error("did not {action}: the answer was not yes")]
    Declined {
        /// What would have been done.
        action: String,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No keyring directory was given and no home directory is known.
    #[error(
        "no keyring directory: HOME is not set; pass --keyring-dir DIR or set CAIRN_KEYRING_DIR"
    )]
    NoKeyringDir,
    /// A node URL that cannot be used.
    #[error("bad node URL {url:?}: {reason}; pass --node http://HOST:PORT or set CAIRN_NODE (see `cairn --help` for the default)")]
    BadNodeUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node could not be reached.
    #[error("cannot reach node at {url}: {reason}; is cairnd running? pass --node URL or set CAIRN_NODE")]
    NodeUnreachable {
        /// The node's base URL.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The node did not answer in time.
    #[error("node at {url} did not answer {what} within {seconds} s; is it overloaded or stuck? try again or pass another --node")]
    NodeTimeout {
        /// The node's base URL.
        url: String,
        /// The request.
        what: String,
        /// The time allowed.
        seconds: u64,
    },
    /// The node answered with its error shape.
    #[error("node refused {what}: {code}: {message}")]
    NodeError {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// The node's error code (`insufficient_funds`, `bad_nonce`, ...).
        code: String,
        /// The node's message.
        message: String,
    },
    /// The node's answer is not what the RPC specifies.
    #[error("unexpected answer from node at {url} to {what}: {reason}; is that a cairnd RPC address of the same version?")]
    BadResponse {
        /// The node's base URL.
        url: String,
        /// The request.
        what: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// What the node said does not verify against the trusted genesis.
    #[error("the answer of the node at {url} does not verify: {reason}. Do not trust it; ask another node")]
    Unverified {
        /// The node's base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The witness node's header of a verified height differs from the
    /// verified one: one of the two nodes serves a fork.
    #[error("fork detected at height {height}: the node at {primary} serves block {primary_hash} (verified against the trusted validators) but the witness at {witness} serves block {witness_hash}. Nothing was trusted; one of them is on a fork, find out which before trusting either")]
    Fork {
        /// The node queried (whose answer verified).
        primary: String,
        /// The witness.
        witness: String,
        /// The height compared.
        height: u64,
        /// The primary's (verified) block hash.
        primary_hash: String,
        /// The witness's block hash.
        witness_hash: String,
    },
    /// The trusted state is older than the trusting period.
    #[error("the trusted state of chain {chain_id:?} (height {height}) is {age_hours:.1} h old, beyond the trusting period of {period_hours:.1} h (--trusting-period): the validators that signed it may have unbonded since and could sign a fake chain at no cost, so nothing is verified from it. Trust a recent block learnt from a source you trust: `cairn light init --trusted-height H --trusted-hash HASH --node URL`")]
    TrustExpired {
        /// The chain.
        chain_id: String,
        /// The trusted height.
        height: u64,
        /// Its age.
        age_hours: f64,
        /// The trusting period.
        period_hours: f64,
    },
    /// No trusted state for a chain and no genesis to start from.
    #[error("no trusted state for chain {chain_id:?} in {dir}: run `cairn light init --genesis FILE` (or `--trusted-height H --trusted-hash HASH`), or pass --genesis FILE")]
    LightUninitialized {
        /// The chain the node says it is on.
        chain_id: String,
        /// The light directory searched.
        dir: String,
    },
    /// The trusted state on disk cannot be used.
    #[error("the trusted state {path} cannot be used: {reason}")]
    LightState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node is on another chain than the one asked for.
    #[error("chain id mismatch: --chain-id is {given:?} but the node at {url} is on chain {node:?}; nothing was signed. Pass --node with a node of chain {given:?}, or --chain-id {node:?} to sign for that chain")]
    ChainIdMismatch {
        /// The chain id given with `--chain-id`.
        given: String,
        /// The chain id the node reports.
        node: String,
        /// The node's URL.
        url: String,
    },
    /// A transfer that the account cannot pay.
    #[error("insufficient funds: balance {balance}, need {need} (amount {amount} + fee {fee}) in account {address}")]
    InsufficientFunds {
        /// The sender's address.
        address: String,
        /// Its balance.
        balance: u64,
        /// Amount plus fee.
        need: u64,
        /// The amount.
        amount: u64,
        /// The fee.
        fee: u64,
    },
    /// A transfer whose fields break a rule before it is sent.
    #[error("invalid transfer: {reason}")]
    InvalidTransfer {
        /// What is wrong.
        reason: String,
    },
    /// A submitted transaction was not seen in a block in time.
    #[error("transaction {hash} was submitted but not seen in a block within {waited:?}{}; check later with `cairn query tx {hash}`, or pass a longer --timeout", queued_reason(*.queued_behind_nonce))]
    WaitTimeout {
        /// The transaction hash.
        hash: String,
        /// The time waited.
        waited: std::time::Duration,
        /// The nonce it waited for, when the node queued it behind one.
        queued_behind_nonce: Option<u64>,
    },
    /// Waiting for a submitted transaction failed.
    #[error("transaction {hash} was submitted, but waiting for it failed: {source}; check later with `cairn query tx {hash}`")]
    WaitFailed {
        /// The transaction hash.
        hash: String,
        /// Why waiting failed.
        source: Box<CliError>,
    },
    /// `cairn devnet up` flags that cannot make a devnet.
    #[error("cannot make that devnet: {reason}")]
    DevnetSettings {
        /// What is wrong and what to do.
        reason: String,
    },
    /// A port a devnet node needs is taken.
    #[error("port {port} on 127.0.0.1 ({what} of node {node}) is already in use: {reason}; pass another --base-port (e.g. --base-port {suggestion}), or stop what listens there (another devnet stops with `cairn devnet down --dir DIR`)")]
    DevnetPortTaken {
        /// The port.
        port: u16,
        /// Which listener of the node ("p2p", "RPC", "metrics").
        what: &'static str,
        /// The node's name.
        node: String,
        /// The operating system's reason.
        reason: String,
        /// A base port that avoids this range.
        suggestion: u16,
    },
    /// The `cairnd` binary could not be found.
    #[error("cannot find the node binary `cairnd` (looked in {looked}); build it with `cargo build -p cairn-node --bins`, put it on PATH, or pass --cairnd PATH")]
    CairndNotFound {
        /// Where it was looked for.
        looked: String,
    },
    /// A `cairnd` command run by the devnet failed.
    #[error("`{command}` failed: {reason}")]
    CairndFailed {
        /// The command line.
        command: String,
        /// Exit status and output, or why it could not run.
        reason: String,
    },
    /// No devnet in the directory.
    #[error("no devnet in {dir}: {file} does not exist; start one with `cairn devnet up --dir {dir}`, or pass the --dir of an existing devnet")]
    NoDevnet {
        /// The devnet directory.
        dir: PathBuf,
        /// Its `devnet.json`.
        file: PathBuf,
    },
    /// A directory that holds part of a devnet, or something else.
    #[error("{dir} {reason}; delete it (`rm -r {dir}`) or pass another --dir")]
    DevnetDirUnusable {
        /// The directory.
        dir: PathBuf,
        /// What is in it.
        reason: String,
    },
    /// A `devnet.json` that cannot be understood.
    #[error("devnet file {path} is corrupted: {reason}; stop any nodes by hand, then delete the devnet directory and run `cairn devnet up` again")]
    CorruptDevnetFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `devnet up` on a devnet whose nodes still run.
    #[error("the devnet in {dir} is already running ({running}); see it with `cairn devnet status --dir {dir}`, or stop it with `cairn devnet down --dir {dir}` first")]
    DevnetRunning {
        /// The devnet directory.
        dir: PathBuf,
        /// The running nodes and their pids.
        running: String,
    },
    /// `devnet start NODE` on a node that runs.
    #[error("node {name} is already running (pid {pid}); restart it with `cairn devnet restart {name} --dir {dir}`, or stop it with `cairn devnet stop {name} --dir {dir}`")]
    DevnetNodeRunning {
        /// The node's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The devnet directory, quoted for a shell.
        dir: String,
    },
    /// A node name that is not in the devnet.
    #[error("{reason}; see them with `cairn devnet status`")]
    NoSuchDevnetNode {
        /// Which name, and the names there are.
        reason: String,
    },
    /// `devnet up` resumed with flags that do not match the recorded devnet.
    #[error("the devnet in {dir} was made with {setting} {recorded}, not {given}; leave the flag out to resume it, or pass another --dir for a new devnet")]
    DevnetMismatch {
        /// The devnet directory.
        dir: PathBuf,
        /// The flag.
        setting: &'static str,
        /// The recorded value.
        recorded: String,
        /// The value given.
        given: String,
    },
    /// A devnet node exited while the devnet was starting or running.
    #[error("node {name} (pid {pid}) exited ({status}); its log {log} ends with:\n{tail}")]
    DevnetNodeExited {
        /// The node's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The devnet did not commit blocks in time.
    #[error("the devnet did not become ready within {seconds} s: {reason}; the nodes were stopped. Look at the logs ({logs}), then try again (resume with the same command)")]
    DevnetNotReady {
        /// The time waited.
        seconds: u64,
        /// What was still missing.
        reason: String,
        /// The log files.
        logs: String,
    },
    /// Signalling or watching processes failed.
    #[error("cannot {action}: {reason}")]
    Process {
        /// What was being done.
        action: String,
        /// Why it failed.
        reason: String,
    },
    /// A genesis that could not be built or written.
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
    /// A value from cairn-types that failed to parse or check.
    #[error(transparent)]
    Types(#[from] cairn_types::TypesError),
    /// Writing to standard output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

/// Why a queued transaction was not committed, for [`CliError::WaitTimeout`].
fn queued_reason(queued_behind_nonce: Option<u64>) -> String {
    match queued_behind_nonce {
        Some(nonce) => format!(
            ": the node queued it behind nonce {nonce}, so it waits for the sender's transfer with nonce {nonce} (send that one if it was never sent)"
        ),
        None => String::new(),
    }
}

/// The result type of `cairn-cli`.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// A stable snake_case code for scripts, the `code` of the
    /// `{"error": {"code", "message"}}` shape printed under `--json`. An
    /// error the node returned keeps the node's code.
    pub fn code(&self) -> &str {
        match self {
            CliError::Bench { .. } => "bench",
            CliError::BadKeyName { .. } => "bad_key_name",
            CliError::UnknownKey { .. } => "unknown_key",
            CliError::UnknownAccount { .. } => "unknown_account",
            CliError::KeyExists { .. } => "key_exists",
            CliError::PassphraseRequired { .. } => "passphrase_required",
            CliError::WrongPassphrase { .. } => "wrong_passphrase",
            CliError::BadPassphrase { .. } => "bad_passphrase",
            CliError::CorruptKeyFile { .. } => "corrupt_key_file",
            CliError::InsecureKeyFile { .. } => "insecure_key_file",
            CliError::BadSecretFile { .. } => "bad_secret_file",
            CliError::ConfirmationRequired { .. } => "confirmation_required",
            CliError::Declined { .. } => "declined",
            CliError::Io { .. } => "io",
            CliError::NoKeyringDir => "no_keyring_dir",
            CliError::BadNodeUrl { .. } => "bad_node_url",
            CliError::NodeUnreachable { .. } => "node_unreachable",
            CliError::NodeTimeout { .. } => "node_timeout",
            CliError::NodeError { code, .. } => code,
            CliError::BadResponse { .. } => "bad_response",
            CliError::Unverified { .. } => "unverified",
            CliError::Fork { .. } => "fork",
            CliError::TrustExpired { .. } => "trust_expired",
            CliError::LightUninitialized { .. } => "light_uninitialized",
            CliError::LightState { .. } => "light_state",
            CliError::ChainIdMismatch { .. } => "chain_id_mismatch",
            CliError::InsufficientFunds { .. } => "insufficient_funds",
            CliError::InvalidTransfer { .. } => "invalid_transfer",
            CliError::WaitTimeout { .. } => "wait_timeout",
            CliError::WaitFailed { .. } => "wait_failed",
            CliError::DevnetSettings { .. } => "devnet_settings",
            CliError::DevnetPortTaken { .. } => "devnet_port_taken",
            CliError::CairndNotFound { .. } => "cairnd_not_found",
            CliError::CairndFailed { .. } => "cairnd_failed",
            CliError::NoDevnet { .. } => "no_devnet",
            CliError::DevnetDirUnusable { .. } => "devnet_dir_unusable",
            CliError::CorruptDevnetFile { .. } => "corrupt_devnet_file",
            CliError::DevnetRunning { .. } => "devnet_running",
            CliError::DevnetMismatch { .. } => "devnet_mismatch",
            CliError::DevnetNodeRunning { .. } => "devnet_node_running",
            CliError::NoSuchDevnetNode { .. } => "no_such_devnet_node",
            CliError::DevnetNodeExited { .. } => "devnet_node_exited",
            CliError::DevnetNotReady { .. } => "devnet_not_ready",
            CliError::Process { .. } => "process",
            CliError::Genesis(_) => "genesis",
            CliError::Types(_) => "invalid_value",
            CliError::Output(_) => "output",
        }
    }

    /// The error in the node's error shape, `{"error": {"code", "message"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        error_json(self.code(), &self.to_string())
    }

    /// An [`CliError::Io`] error for `action` on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    }
}

/// `{"error": {"code": code, "message": message}}`, the node's error shape.
pub fn error_json(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}
