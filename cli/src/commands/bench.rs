//! `cairn bench`: a load generator that measures committed throughput and
//! submit-to-commit latency of a running chain.
//!
//! 1. Loads the funded account keys (`--keys-dir`, by default a devnet's
//!    `devnet/keys`), reads each account's `next_nonce`, and signs every
//!    transfer before the measured window (on every core), so the window
//!    holds only submission: batches of `--batch` transfers through
//!    `POST /txs`, round-robin over the `--node`s, at `--rate` transfers/s
//!    or as fast as the nodes take them (`--rate max`), with at most
//!    [`BENCH_REQUESTS_IN_FLIGHT_MAX`] requests in flight.
//! 2. Follows the WebSocket block stream of the first node (subscribed
//!    before the first submission, so no block is missed; after a lag it
//!    reads the missed blocks with `GET /block/{height}`) and times each
//!    transfer from the moment its batch was sent to the moment its block
//!    was announced.
//! 3. Reports committed transfers per second (from the first submission to
//!    the last commit), latency percentiles over the transfers (each one
//!    from its batch's submission to its own block), rejections by reason,
//!    and the CPU this process used, since it shares the machine with the
//!    nodes. `--json` rounds: milliseconds to 0.1 ms, seconds to 1 ms,
//!    rates to whole transfers per second.
//!
//! While sending, a progress line on standard error says what was sent and
//! committed and the recent rate: redrawn every [`PROGRESS_INTERVAL`] on a
//! terminal, else printed as a plain line every [`PROGRESS_LOG_INTERVAL`],
//! so a log gets few lines.
//!
//! The nodes' own CPU is part of every run when their Prometheus endpoints
//! are known (`--metrics URL`, or every node of `--devnet DIR`):
//! `process_cpu_seconds_total` of each is read just before the window and
//! after the last commit, and the report gives the sum and the CPU per
//! committed transfer (all nodes together, in microseconds).
//!
//! `--profile light|medium|saturation|all` runs the standard loads of
//! BENCHMARKS.md one after another ([`BenchProfile::loads`]) and writes
//! every report into one JSON file (`--out`).

use std::{
    collections::{BTreeMap, HashMap},
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_types::{Address, ChainId, Keypair, Transaction};
use clap::Args;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::{
    commands::{write_json, write_line},
    duration::parse_duration_at_most,
    error::{CliError, Result},
    keyfile::KeyFile,
    rpc::{BlockSelector, NodeClient},
};

/// Most transfers one run pre-signs.
pub const BENCH_TRANSACTIONS_MAX: u64 = 2_000_000;
/// Most funded accounts one run uses.
pub const BENCH_ACCOUNTS_MAX: usize = 100_000;
/// Most transfers in one `POST /txs` (the node's own limit is 10,000).
pub const BENCH_BATCH_MAX: usize = 10_000;
/// Most submission requests in flight at once.
pub const BENCH_REQUESTS_IN_FLIGHT_MAX: usize = 16;
/// Longest `--duration` (and `--settle`).
pub const BENCH_DURATION_MAX: Duration = Duration::from_secs(60 * 60);
/// Transfers sent when neither `--txs` nor `--duration` is given.
pub const DEFAULT_TRANSACTIONS: u64 = 10_000;
/// Most nonce look-ups in flight at once while preparing.
const NONCE_LOOKUPS_IN_FLIGHT_MAX: usize = 32;
/// Transfers pre-signed per second of `--duration` with `--rate max`.
const MAX_RATE_PRESIGN_PER_SECOND: u64 = 40_000;
/// How often the progress line is redrawn on a terminal.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How often a progress line is printed when standard error is not a
/// terminal (a log): a plain line each time, never more than one a second.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Decimals of milliseconds in the report (0.1 ms).
const MILLISECOND_DECIMALS: i32 = 1;
/// Decimals of seconds in the report (1 ms).
const SECOND_DECIMALS: i32 = 3;
/// Decimals of CPU seconds in the report (the kernel counts 10 ms ticks).
const CPU_SECOND_DECIMALS: i32 = 2;
/// Block events buffered between the stream reader and the tally.
const BLOCK_EVENTS_MAX: usize = 1_024;
/// `--node` without `--node` or `--devnet`.
const DEFAULT_NODE: &str = "http://127.0.0.1:26601";
/// `--keys-dir` without `--keys-dir` or `--devnet`.
const DEFAULT_KEYS_DIR: &str = "devnet/bench-keys";
/// Most bytes of a node's metrics page read.
const METRICS_BYTES_MAX: usize = 1 << 20;
/// Deadline of one metrics read.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);
/// Decimals of the CPU per transfer in microseconds (0.1 us).
const CPU_PER_TRANSFER_DECIMALS: i32 = 1;

/// `cairn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// RPC URL of a node to submit to (repeatable; batches go round-robin).
    /// The first one's block stream times the commits [default: the
    /// validators of --devnet, else http://127.0.0.1:26601].
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<String>,
    /// Prometheus URL of a node whose CPU counts in the report (repeatable,
    /// e.g. http://127.0.0.1:26602/metrics) [default: every node of
    /// --devnet, else none].
    #[arg(long = "metrics", value_name = "URL")]
    pub metrics: Vec<String>,
    /// A local devnet's directory (`cairn devnet up --dir DIR`): its
    /// validators' RPC, every node's metrics and DIR/bench-keys are the
    /// defaults of --node, --metrics and --keys-dir.
    #[arg(long, value_name = "DIR")]
    pub devnet: Option<PathBuf>,
    /// Directory of funded account key files (unencrypted): a devnet made
    /// with `--bench-accounts N` writes them to DIR/bench-keys [default:
    /// DEVNET/bench-keys with --devnet, else devnet/bench-keys].
    #[arg(long, value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Use only the first N accounts of the directory.
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,
    /// Run the standard loads of BENCHMARKS.md one after another instead of
    /// one load: light (1,000 tx/s for 10 s in batches of 50, then of 10),
    /// medium (10,000 tx/s for 20 s), saturation (25,000 tx/s offered for
    /// 60 s), or all three; every report goes into --out.
    #[arg(long, value_enum, value_name = "PROFILE", conflicts_with_all = ["txs", "duration", "rate", "batch"])]
    pub profile: Option<BenchProfile>,
    /// The JSON file a --profile run writes its reports to.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "bench-results.json",
        requires = "profile"
    )]
    pub out: PathBuf,
    /// Number of transfers to send [default: 10000 unless --duration is given].
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub txs: Option<u64>,
    /// Send for this long instead of a fixed number (10s, 2m, 500ms; a bare
    /// number is seconds): --rate R sends R per second for that long, and
    /// `--rate max` sends as fast as the nodes take them until it ends.
    #[arg(long, value_name = "DURATION", value_parser = parse_bench_duration)]
    pub duration: Option<Duration>,
    /// Offered load in transfers per second, or `max`.
    #[arg(long, value_name = "R|max", default_value = "max")]
    pub rate: String,
    /// Transfers per `POST /txs`.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch: usize,
    /// How long to wait for the last commits after the last submission
    /// (30s, 2m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_bench_duration, default_value = "60s")]
    pub settle: Duration,
    /// Print the figures as JSON only.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    /// Transfers signed for the run.
    pub transactions: u64,
    /// Transfers submitted (fewer than signed when `--duration` ended
    /// first).
    pub sent: u64,
    /// Transfers the nodes accepted.
    pub accepted: u64,
    /// Transfers committed (seen in a block).
    pub committed: u64,
    /// Offered load (`null` for max).
    pub offered_per_second: Option<u64>,
    /// Transfers per submission (`--batch`).
    pub batch: usize,
    /// Seconds from the first submission to the last commit (to 1 ms).
    pub seconds: f64,
    /// Committed transfers per second over that window (whole).
    pub committed_per_second: u64,
    /// Submit-to-commit latency percentiles over the committed transfers,
    /// in milliseconds (to 0.1 ms).
    pub latency_ms: Percentiles,
    /// Rejections by the node's reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Failed submission requests (transport errors), by message.
    pub request_errors: u64,
    /// CPU seconds this process used during the window (signing excluded).
    pub bench_cpu_seconds: f64,
    /// CPU seconds spent signing before the window.
    pub signing_cpu_seconds: f64,
    /// Blocks seen during the run.
    pub blocks: u64,
    /// CPU seconds the nodes named by `--metrics` used from just before the
    /// window to the last commit, all together (`null` without `--metrics`
    /// or when one could not be read).
    pub nodes_cpu_seconds: Option<f64>,
    /// The same per node, in the order of `--metrics`.
    pub nodes_cpu_seconds_each: Vec<f64>,
    /// `nodes_cpu_seconds` per committed transfer, in microseconds.
    pub nodes_cpu_us_per_transfer: Option<f64>,
}

/// The standard loads of `--profile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchProfile {
    /// 1,000 tx/s for 10 s, in batches of 50 and then of 10.
    Light,
    /// 10,000 tx/s for 20 s in batches of 50.
    Medium,
    /// 25,000 tx/s offered for 60 s in batches of 100 (more than four
    /// validators on two cores commit).
    Saturation,
    /// Light, medium and saturation, in that order.
    All,
}

/// One load of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Its name in the results file.
    pub name: &'static str,
    /// Offered transfers per second.
    pub rate: u64,
    /// Transfers per `POST /txs`.
    pub batch: usize,
    /// How long it sends.
    pub duration: Duration,
}

const LIGHT_LOADS: [Load; 2] = [
    Load {
        name: "light, batches of 50",
        rate: 1_000,
        batch: 50,
        duration: Duration::from_secs(10),
    },
    Load {
        name: "light, batches of 10",
        rate: 1_000,
        batch: 10,
        duration: Duration::from_secs(10),
    },
];
const MEDIUM_LOADS: [Load; 1] = [Load {
    name: "medium",
    rate: 10_000,
    batch: 50,
    duration: Duration::from_secs(20),
}];
const SATURATION_LOADS: [Load; 1] = [Load {
    name: "saturation",
    rate: 25_000,
    batch: 100,
    duration: Duration::from_secs(60),
}];

impl BenchProfile {
    /// The loads it runs, in order.
    pub fn loads(self) -> Vec<Load> {
        match self {
            BenchProfile::Light => LIGHT_LOADS.to_vec(),
            BenchProfile::Medium => MEDIUM_LOADS.to_vec(),
            BenchProfile::Saturation => SATURATION_LOADS.to_vec(),
            BenchProfile::All => [&LIGHT_LOADS[..], &MEDIUM_LOADS, &SATURATION_LOADS].concat(),
        }
    }
}

/// One load's settings.
#[derive(Clone, Copy, Debug)]
struct LoadSettings {
    txs: Option<u64>,
    duration: Option<Duration>,
    rate: Option<u64>,
    batch: usize,
    settle: Duration,
    /// No progress line and no messages on standard error (`--json`).
    quiet: bool,
}

/// Where a run sends and what it reads.
struct Targets {
    nodes: Vec<NodeClient>,
    metrics: Vec<String>,
    keys_dir: PathBuf,
}

/// The results file of a `--profile` run.
#[derive(Debug, Serialize)]
struct ProfileResults {
    profile: BenchProfile,
    /// Seconds since the Unix epoch when the profile started.
    started_unix_seconds: u64,
    /// Cores this machine has (the nodes and the bench share them).
    cores: usize,
    nodes: Vec<String>,
    metrics: Vec<String>,
    runs: Vec<ProfileRun>,
}

/// One load of a profile and what it measured.
#[derive(Debug, Serialize)]
struct ProfileRun {
    name: &'static str,
    report: BenchReport,
}

/// Latency percentiles (nearest rank).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

fn bench_error(reason: impl Into<String>) -> CliError {
    CliError::Bench {
        reason: reason.into(),
    }
}

fn parse_bench_duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration_at_most(text, BENCH_DURATION_MAX)
}

/// `value` rounded to `decimals` decimal places (for the report, so JSON
/// says `15.1`, not `15.093812000000001`).
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A rate rounded to a whole number per second (0 for one that is not a
/// finite positive number).
fn whole_rate(rate: f64) -> u64 {
    if rate.is_finite() && rate > 0.0 {
        // `as` saturates at u64::MAX.
        rate.round() as u64
    } else {
        0
    }
}

/// Nearest-rank percentiles of `latencies` (milliseconds, one per
/// committed transfer, in any order), rounded to 0.1 ms; all zero when
/// there are none.
fn percentiles(mut latencies: Vec<f64>) -> Percentiles {
    if latencies.is_empty() {
        return Percentiles::default();
    }
    latencies.sort_by(f64::total_cmp);
    let count = latencies.len();
    let at = |fraction: f64| -> f64 {
        let rank = ((count as f64 * fraction).ceil() as usize).clamp(1, count);
        round_to(latencies[rank - 1], MILLISECOND_DECIMALS)
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// The number of transfers a run signs.
fn transfers_to_sign(txs: Option<u64>, duration: Option<Duration>, rate: Option<u64>) -> u64 {
    let for_duration = |duration: Duration, per_second: u64| -> u64 {
        let count = (duration.as_secs_f64() * per_second as f64).ceil();
        // `as` saturates; the caller refuses counts above the limit.
        (count as u64).max(1)
    };
    match (txs, duration, rate) {
        (Some(count), _, _) => count,
        (None, Some(duration), Some(rate)) => for_duration(duration, rate),
        (None, Some(duration), None) => for_duration(duration, MAX_RATE_PRESIGN_PER_SECOND),
        (None, None, _) => DEFAULT_TRANSACTIONS,
    }
}

/// The live progress line on standard error.
struct Progress {
    /// Standard error is a terminal: the line is redrawn in place.
    terminal: bool,
    /// When a plain line was last printed (not on a terminal).
    last_logged: Option<Instant>,
    /// Committed count and time at the previous line, for the recent rate.
    last_committed: u64,
    last_time: Instant,
    /// Whether a line is on screen that a newline must end.
    drawn: bool,
}

impl Progress {
    fn new(started: Instant) -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last_logged: None,
            last_committed: 0,
            last_time: started,
            drawn: false,
        }
    }

    /// Called every [`PROGRESS_INTERVAL`]: draws the line on a terminal;
    /// elsewhere prints it if [`PROGRESS_LOG_INTERVAL`] has passed.
    fn tick(&mut self, started: Instant, tally: &Tally) {
        let now = Instant::now();
        // Ticks come a little late: half a tick of slack keeps the lines
        // PROGRESS_LOG_INTERVAL apart rather than one tick more.
        if !self.terminal
            && self.last_logged.is_some_and(|logged| {
                now.duration_since(logged) + PROGRESS_INTERVAL / 2 < PROGRESS_LOG_INTERVAL
            })
        {
            return;
        }
        let interval = now.duration_since(self.last_time);
        let recent = if interval.is_zero() {
            0.0
        } else {
            tally.committed.saturating_sub(self.last_committed) as f64 / interval.as_secs_f64()
        };
        self.last_committed = tally.committed;
        self.last_time = now;
        let line = progress_line(
            now.duration_since(started),
            tally.sent,
            tally.committed,
            tally.rejected.values().sum(),
            recent,
            interval,
        );
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            self.last_logged = Some(now);
            eprintln!("{line}");
        }
    }

    /// Ends a line drawn in place, so what follows starts on its own line.
    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `12.0 s  sent 120000  committed 118000  rejected 0  9850 tx/s in the
/// last 1.0 s`: what was sent and committed so far, and the committed rate
/// since the previous line.
fn progress_line(
    elapsed: Duration,
    sent: u64,
    committed: u64,
    rejected: u64,
    recent_per_second: f64,
    recent: Duration,
) -> String {
    format!(
        "{:>6.1} s  sent {sent:>8}  committed {committed:>8}  rejected {rejected:>6}  {:>7} tx/s in the last {:.1} s",
        elapsed.as_secs_f64(),
        whole_rate(recent_per_second),
        recent.as_secs_f64()
    )
}

/// Runs `cairn bench`: one load, or every load of `--profile`.
pub async fn run(args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    if args.batch == 0 || args.batch > BENCH_BATCH_MAX {
        return Err(bench_error(format!(
            "--batch {} is out of range; use 1 to {BENCH_BATCH_MAX}",
            args.batch
        )));
    }
    let targets = targets(&args)?;
    let Some(profile) = args.profile else {
        let settings = LoadSettings {
            txs: args.txs,
            duration: args.duration,
            rate: parse_rate(&args.rate)?,
            batch: args.batch,
            settle: args.settle,
            quiet: args.json,
        };
        let report = run_load(&settings, &targets, args.accounts).await?;
        return if args.json {
            write_json(out, &report)
        } else {
            write_line(out, &format_report(&report))
        };
    };
    let started_unix_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut results = ProfileResults {
        profile,
        started_unix_seconds,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        nodes: targets
            .nodes
            .iter()
            .map(|node| node.url().to_string())
            .collect(),
        metrics: targets.metrics.clone(),
        runs: Vec::new(),
    };
    for load in profile.loads() {
        let settings = LoadSettings {
            txs: None,
            duration: Some(load.duration),
            rate: Some(load.rate),
            batch: load.batch,
            settle: args.settle,
            quiet: args.json,
        };
        if !args.json {
            write_line(
                out,
                &format!(
                    "== {}: {} tx/s for {} s in batches of {}",
                    load.name,
                    load.rate,
                    load.duration.as_secs(),
                    load.batch
                ),
            )?;
        }
        let report = run_load(&settings, &targets, args.accounts).await?;
        if !args.json {
            write_line(out, &format_report(&report))?;
        }
        results.runs.push(ProfileRun {
            name: load.name,
            report,
        });
        // Written after every load, so a long profile that is stopped
        // keeps what it measured.
        write_results(&args.out, &results)?;
    }
    if args.json {
        write_json(out, &results)
    } else {
        write_line(out, &format!("the reports are in {}", args.out.display()))
    }
}

/// Writes the results file of a profile (to a temporary file first, so a
/// stopped run never leaves half a file).
fn write_results(path: &std::path::Path, results: &ProfileResults) -> Result<()> {
    let text = serde_json::to_string_pretty(results)
        .map_err(|error| bench_error(format!("cannot encode the results: {error}")))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text + "\n")
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| {
            bench_error(format!(
                "cannot write the results to {}: {error}; pass --out with a writable file",
                path.display()
            ))
        })
}

/// The nodes, metrics endpoints and key directory of a run, from the flags
/// and `--devnet`.
fn targets(args: &BenchArgs) -> Result<Targets> {
    let devnet = args
        .devnet
        .as_deref()
        .map(crate::commands::devnet::bench_endpoints)
        .transpose()?;
    let nodes: Vec<String> = match (&devnet, args.nodes.is_empty()) {
        (_, false) => args.nodes.clone(),
        (Some(devnet), true) => devnet.validators_rpc.clone(),
        (None, true) => vec![DEFAULT_NODE.to_string()],
    };
    if nodes.is_empty() {
        return Err(bench_error(
            "the devnet has no validators; pass --node URL".to_string(),
        ));
    }
    let metrics = match (&devnet, args.metrics.is_empty()) {
        (_, false) => args.metrics.clone(),
        (Some(devnet), true) => devnet.metrics.clone(),
        (None, true) => Vec::new(),
    };
    let keys_dir = match (&args.keys_dir, &args.devnet) {
        (Some(dir), _) => dir.clone(),
        (None, Some(devnet)) => devnet.join("bench-keys"),
        (None, None) => PathBuf::from(DEFAULT_KEYS_DIR),
    };
    Ok(Targets {
        nodes: nodes
            .iter()
            .map(|url| NodeClient::new(url))
            .collect::<Result<Vec<_>>>()?,
        metrics,
        keys_dir,
    })
}

/// Runs one load and measures it.
async fn run_load(
    settings: &LoadSettings,
    targets: &Targets,
    accounts: Option<usize>,
) -> Result<BenchReport> {
    let rate = settings.rate;
    let total = transfers_to_sign(settings.txs, settings.duration, rate);
    if total == 0 || total > BENCH_TRANSACTIONS_MAX {
        let why = match (settings.duration, rate) {
            (Some(_), None) if settings.txs.is_none() => format!(
                " (--rate max signs {MAX_RATE_PRESIGN_PER_SECOND} per second of --duration)"
            ),
            _ => String::new(),
        };
        return Err(bench_error(format!(
            "the run would send {total} transfers{why}; use --txs, or --duration with --rate, to send 1 to {BENCH_TRANSACTIONS_MAX}"
        )));
    }
    let clients = &targets.nodes;
    let keys = load_keys(&targets.keys_dir, accounts)?;
    let (status, _) = clients[0].status().await?;
    let chain_id = ChainId::new(&status.chain_id)
        .map_err(|error| bench_error(format!("the node reports a bad chain id: {error}")))?;
    let nonces = next_nonces(&clients[0], &keys).await?;
    if !settings.quiet {
        eprintln!(
            "signing {total} transfers from {} accounts of chain {chain_id}...",
            keys.len()
        );
    }
    let cpu_before_signing = process_cpu_seconds();
    let signed = sign_all(&chain_id, &keys, &nonces, total);
    let signing_cpu_seconds = process_cpu_seconds() - cpu_before_signing;

    let mut subscription = clients[0].subscribe_blocks().await?;
    let start_height = clients[0].status().await?.0.latest_height;
    let index_of: HashMap<String, usize> = signed
        .iter()
        .enumerate()
        .map(|(index, (hash, _))| (hash.clone(), index))
        .collect();
    let tally = Arc::new(Mutex::new(Tally::new(signed.len())));

    // Block stream reader: hashes of committed transfers with their time.
    let (blocks_sender, mut blocks) =
        mpsc::channel::<(u64, Vec<String>, Instant)>(BLOCK_EVENTS_MAX);
    let reader_client = clients[0].clone();
    let reader = tokio::spawn(async move {
        let mut last_height = start_height;
        loop {
            match subscription.next_block().await {
                Ok(Some(block)) => {
                    let now = Instant::now();
                    // Blocks missed before a reconnection are read back.
                    for height in (last_height + 1)..block.height {
                        if let Ok((missed, _)) =
                            reader_client.block(BlockSelector::Height(height)).await
                        {
                            let _ = blocks_sender.send((height, missed.transactions, now)).await;
                        }
                    }
                    last_height = last_height.max(block.height);
                    if blocks_sender
                        .send((block.height, block.transactions, now))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) | Err(_) => match reader_client.subscribe_blocks().await {
                    Ok(again) => subscription = again,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                },
            }
        }
    });

    let metrics_http = metrics_client()?;
    let nodes_cpu_before = nodes_cpu_seconds(&metrics_http, &targets.metrics).await;
    if !settings.quiet {
        if let Err(error) = &nodes_cpu_before {
            eprintln!("the nodes' CPU is not part of this run: {error}");
        }
    }
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    // With --duration, nothing is submitted after it ends.
    let stop_sending = settings.duration.map(|duration| started + duration);
    let in_flight = Arc::new(Semaphore::new(BENCH_REQUESTS_IN_FLIGHT_MAX));
    let batches: Vec<Vec<(usize, String)>> = signed
        .into_iter()
        .enumerate()
        .map(|(index, (_, hex))| (index, hex))
        .collect::<Vec<_>>()
        .chunks(settings.batch)
        .map(<[(usize, String)]>::to_vec)
        .collect();
    let batch_count = batches.len();
    let mut submitted_all = false;
    let mut batches = batches.into_iter().enumerate();
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first tick is immediate; the first line comes after an interval.
    ticks.reset();
    let mut progress = Progress::new(started);
    let mut last_submission = started;
    let mut submitters = Vec::with_capacity(batch_count);
    loop {
        // Submit every batch that is due. Blocks are tallied and the
        // progress line drawn while a batch waits for its time or a slot.
        while !submitted_all {
            let Some((number, batch)) = batches.next() else {
                submitted_all = true;
                last_submission = Instant::now();
                break;
            };
            let due = rate.map(|rate| {
                started + Duration::from_secs_f64((number * settings.batch) as f64 / rate as f64)
            });
            if let Some(due) = due.filter(|due| stop_sending.is_none_or(|stop| *due < stop)) {
                while due > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        Some(event) = blocks.recv() => tally_block(&tally, &index_of, event),
                        _ = ticks.tick() => {
                            if !settings.quiet {
                                progress.tick(started, &lock(&tally));
                            }
                        }
                    }
                }
            }
            let permit = loop {
                tokio::select! {
                    permit = Arc::clone(&in_flight).acquire_owned() => {
                        break permit.map_err(|_| bench_error("the submission limiter closed"))?;
                    }
                    Some(event) = blocks.recv() => tally_block(&tally, &index_of, event),
                    _ = ticks.tick() => {
                        if !settings.quiet {
                            progress.tick(started, &lock(&tally));
                        }
                    }
                }
            };
            let now = Instant::now();
            let over =
                stop_sending.is_some_and(|stop| now >= stop || due.is_some_and(|due| due >= stop));
            if over {
                // --duration is over: the rest is never sent.
                let unsent = batch.len()
                    + batches
                        .by_ref()
                        .map(|(_, batch)| batch.len())
                        .sum::<usize>();
                lock(&tally).abandon(unsent as u64);
                submitted_all = true;
                last_submission = now;
                break;
            }
            let client = clients[number % clients.len()].clone();
            let batch_tally = Arc::clone(&tally);
            submitters.push(tokio::spawn(async move {
                submit_batch(&client, batch, &batch_tally).await;
                drop(permit);
            }));
            // Keep the tally current while submitting as fast as possible.
            while let Ok(event) = blocks.try_recv() {
                tally_block(&tally, &index_of, event);
            }
        }
        let (done, pending) = {
            let tally = lock(&tally);
            (tally.finished(), tally.pending())
        };
        if submitted_all && done {
            break;
        }
        if submitted_all && last_submission.elapsed() > settings.settle {
            if !settings.quiet {
                progress.finish();
                eprintln!(
                    "{pending} transfers were not committed within {} s of the last submission (--settle)",
                    settings.settle.as_secs_f64()
                );
            }
            break;
        }
        tokio::select! {
            Some(event) = blocks.recv() => tally_block(&tally, &index_of, event),
            _ = ticks.tick() => {
                if !settings.quiet {
                    progress.tick(started, &lock(&tally));
                }
            }
        }
    }
    for submitter in submitters {
        let _ = submitter.await;
    }
    reader.abort();
    let bench_cpu_seconds = process_cpu_seconds() - cpu_before;
    let nodes_cpu_after = nodes_cpu_seconds(&metrics_http, &targets.metrics).await;
    let mut report =
        lock(&tally).report(total, rate, started, bench_cpu_seconds, signing_cpu_seconds);
    report.batch = settings.batch;
    report.set_nodes_cpu(&nodes_cpu_before, &nodes_cpu_after);
    if !settings.quiet {
        progress.finish();
    }
    Ok(report)
}

/// The HTTP client that reads the nodes' metrics.
fn metrics_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(METRICS_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| bench_error(format!("cannot build an HTTP client: {error}")))
}

/// `process_cpu_seconds_total` of every metrics URL, in order; empty for
/// none; an error naming the first one that could not be read.
async fn nodes_cpu_seconds(
    http: &reqwest::Client,
    urls: &[String],
) -> std::result::Result<Vec<f64>, String> {
    let mut each = Vec::with_capacity(urls.len());
    for url in urls {
        each.push(node_cpu_seconds(http, url).await?);
    }
    Ok(each)
}

async fn node_cpu_seconds(http: &reqwest::Client, url: &str) -> std::result::Result<f64, String> {
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|error| format!("cannot read {url}: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("cannot read {url}: {error}"))?
    {
        if body.len() + chunk.len() > METRICS_BYTES_MAX {
            return Err(format!("{url} sent more than {METRICS_BYTES_MAX} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    cpu_from_metrics(&String::from_utf8_lossy(&body)).ok_or_else(|| {
        format!("{url} has no process_cpu_seconds_total; is it a cairnd metrics URL (e.g. http://127.0.0.1:26602/metrics)?")
    })
}

/// The value of `process_cpu_seconds_total` in a Prometheus text page.
fn cpu_from_metrics(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
}

impl BenchReport {
    /// Fills the nodes' CPU figures from the counters read before and
    /// after the window (left empty when either read failed or there were
    /// no metrics URLs).
    fn set_nodes_cpu(
        &mut self,
        before: &std::result::Result<Vec<f64>, String>,
        after: &std::result::Result<Vec<f64>, String>,
    ) {
        let (Ok(before), Ok(after)) = (before, after) else {
            return;
        };
        if before.is_empty() || before.len() != after.len() {
            return;
        }
        let each: Vec<f64> = after
            .iter()
            .zip(before)
            .map(|(after, before)| (after - before).max(0.0))
            .collect();
        let total: f64 = each.iter().sum();
        self.nodes_cpu_seconds_each = each
            .iter()
            .map(|seconds| round_to(*seconds, CPU_SECOND_DECIMALS))
            .collect();
        self.nodes_cpu_seconds = Some(round_to(total, CPU_SECOND_DECIMALS));
        self.nodes_cpu_us_per_transfer = (self.committed > 0).then(|| {
            round_to(
                total * 1_000_000.0 / self.committed as f64,
                CPU_PER_TRANSFER_DECIMALS,
            )
        });
    }
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_rate(text: &str) -> Result<Option<u64>> {
    if text == "max" {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(rate) if rate > 0 => Ok(Some(rate)),
        _ => Err(bench_error(format!(
            "--rate {text:?} is not a rate; give transfers per second (e.g. 1000) or `max`"
        ))),
    }
}

/// Reads every key file of `dir` (sorted by name), at most `limit`.
fn load_keys(dir: &std::path::Path, limit: Option<usize>) -> Result<Vec<Keypair>> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        bench_error(format!(
            "cannot read the key directory {}: {error}; pass --keys-dir with the funded account keys (a devnet writes them to DIR/keys)",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths.truncate(limit.unwrap_or(BENCH_ACCOUNTS_MAX).min(BENCH_ACCOUNTS_MAX));
    if paths.len() < 2 {
        return Err(bench_error(format!(
            "{} holds {} key files; the bench needs at least 2 funded accounts",
            dir.display(),
            paths.len()
        )));
    }
    paths
        .iter()
        .map(|path| KeyFile::read(path).and_then(|file| file.keypair(None)))
        .collect()
}

/// The next nonce of every account (pending transfers counted).
async fn next_nonces(client: &NodeClient, keys: &[Keypair]) -> Result<Vec<u64>> {
    let limiter = Arc::new(Semaphore::new(NONCE_LOOKUPS_IN_FLIGHT_MAX));
    let mut lookups = Vec::with_capacity(keys.len());
    for keypair in keys {
        let client = client.clone();
        let address = keypair.address();
        let limiter = Arc::clone(&limiter);
        lookups.push(tokio::spawn(async move {
            let _permit = limiter.acquire_owned().await;
            client
                .account(&address)
                .await
                .map(|(account, _)| account.next_nonce)
        }));
    }
    let mut nonces = Vec::with_capacity(keys.len());
    for lookup in lookups {
        let nonce = lookup
            .await
            .map_err(|error| bench_error(format!("a nonce look-up failed: {error}")))??;
        nonces.push(nonce);
    }
    Ok(nonces)
}

/// Signs `total` transfers: transfer `i` goes from account `i mod A` (with
/// its next nonce) to the following account. Returns (hash hex, bytes hex).
fn sign_all(
    chain_id: &ChainId,
    keys: &[Keypair],
    nonces: &[u64],
    total: u64,
) -> Vec<(String, String)> {
    let accounts = keys.len() as u64;
    let recipients: Vec<Address> = keys.iter().map(Keypair::address).collect();
    let threads = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .max(1) as u64;
    let per_thread = total.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let recipients = &recipients;
                scope.spawn(move || {
                    let first = thread * per_thread;
                    let last = (first + per_thread).min(total);
                    (first..last)
                        .map(|index| {
                            let sender = (index % accounts) as usize;
                            let signed = Transaction {
                                chain_id: chain_id.clone(),
                                sender: keys[sender].public_key(),
                                recipient: recipients[(sender + 1) % recipients.len()],
                                amount: 1,
                                fee: 1,
                                nonce: nonces[sender] + index / accounts,
                                memo: String::new(),
                                kind: cairn_types::TransactionKind::Transfer,
                            }
                            .sign(&keys[sender]);
                            (signed.hash().to_string(), hex::encode(signed.to_bytes()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    })
}

/// What has happened to each transfer.
struct Tally {
    sent_at: Vec<Option<Instant>>,
    committed_at: Vec<Option<Instant>>,
    accepted: u64,
    sent: u64,
    committed: u64,
    rejected: BTreeMap<String, u64>,
    request_errors: u64,
    settled: u64,
    first_sent: Option<Instant>,
    last_commit: Option<Instant>,
    blocks: u64,
}

impl Tally {
    fn new(transactions: usize) -> Tally {
        Tally {
            sent_at: vec![None; transactions],
            committed_at: vec![None; transactions],
            accepted: 0,
            sent: 0,
            committed: 0,
            rejected: BTreeMap::new(),
            request_errors: 0,
            settled: 0,
            first_sent: None,
            last_commit: None,
            blocks: 0,
        }
    }

    fn finished(&self) -> bool {
        self.settled == self.sent_at.len() as u64
    }

    fn pending(&self) -> u64 {
        (self.sent_at.len() as u64).saturating_sub(self.settled)
    }

    /// `count` transfers will never be sent (`--duration` ended).
    fn abandon(&mut self, count: u64) {
        self.settled += count;
    }

    fn report(
        &self,
        total: u64,
        rate: Option<u64>,
        started: Instant,
        bench_cpu_seconds: f64,
        signing_cpu_seconds: f64,
    ) -> BenchReport {
        // One latency per committed transfer: from the submission of its
        // batch to the block it is in, so the transfers of one batch that
        // land in different blocks get different latencies.
        let latencies: Vec<f64> = self
            .sent_at
            .iter()
            .zip(&self.committed_at)
            .filter_map(|(sent, committed)| match (sent, committed) {
                (Some(sent), Some(committed)) => {
                    Some(committed.saturating_duration_since(*sent).as_secs_f64() * 1_000.0)
                }
                _ => None,
            })
            .collect();
        let seconds = match (self.first_sent, self.last_commit) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => started.elapsed().as_secs_f64(),
        }
        .max(0.001);
        BenchReport {
            transactions: total,
            sent: self.sent,
            accepted: self.accepted,
            committed: self.committed,
            offered_per_second: rate,
            // Set by the caller, which knows --batch.
            batch: 0,
            seconds: round_to(seconds, SECOND_DECIMALS),
            committed_per_second: whole_rate(self.committed as f64 / seconds),
            latency_ms: percentiles(latencies),
            rejected: self.rejected.clone(),
            request_errors: self.request_errors,
            bench_cpu_seconds: round_to(bench_cpu_seconds, CPU_SECOND_DECIMALS),
            signing_cpu_seconds: round_to(signing_cpu_seconds, CPU_SECOND_DECIMALS),
            blocks: self.blocks,
            // Set by the caller, which reads the nodes' metrics.
            nodes_cpu_seconds: None,
            nodes_cpu_seconds_each: Vec::new(),
            nodes_cpu_us_per_transfer: None,
        }
    }
}

fn tally_block(
    tally: &Mutex<Tally>,
    index_of: &HashMap<String, usize>,
    (_height, hashes, at): (u64, Vec<String>, Instant),
) {
    let mut tally = lock(tally);
    tally.blocks += 1;
    for hash in hashes {
        let Some(&index) = index_of.get(&hash) else {
            continue;
        };
        if tally.committed_at[index].is_none() {
            tally.committed_at[index] = Some(at);
            tally.committed += 1;
            tally.settled += 1;
            tally.last_commit = Some(at);
        }
    }
}

async fn submit_batch(client: &NodeClient, batch: Vec<(usize, String)>, tally: &Mutex<Tally>) {
    let sent = Instant::now();
    {
        let mut tally = lock(tally);
        tally.first_sent.get_or_insert(sent);
        tally.sent += batch.len() as u64;
        for (index, _) in &batch {
            tally.sent_at[*index] = Some(sent);
        }
    }
    let hexes: Vec<&str> = batch.iter().map(|(_, hex)| hex.as_str()).collect();
    let results = client.submit_hex_batch(&hexes).await;
    let mut tally = lock(tally);
    match results {
        Ok(results) => {
            for ((index, _), result) in batch.iter().zip(results) {
                match result {
                    Ok(()) => tally.accepted += 1,
                    // A duplicate is already pending or committed: it will be seen.
                    Err(code) if code == "duplicate" => tally.accepted += 1,
                    Err(code) => {
                        *tally.rejected.entry(code).or_default() += 1;
                        if tally.committed_at[*index].is_none() {
                            tally.settled += 1;
                        }
                    }
                }
            }
        }
        Err(error) => {
            tally.request_errors += 1;
            *tally
                .rejected
                .entry(format!("request failed: {error}"))
                .or_default() += batch.len() as u64;
            for (index, _) in &batch {
                if tally.committed_at[*index].is_none() {
                    tally.settled += 1;
                }
            }
        }
    }
}

fn format_report(report: &BenchReport) -> String {
    let offered = report
        .offered_per_second
        .map_or_else(|| "max".to_string(), |rate| format!("{rate} tx/s"));
    let unsent = if report.sent < report.transactions {
        format!(
            "; {} signed were not sent before --duration ended",
            report.transactions - report.sent
        )
    } else {
        String::new()
    };
    let latency = &report.latency_ms;
    // Not a rounding artefact: the transfers of one batch share their
    // submission time and often their block.
    let one_batch = if report.batch > 1 && report.committed > 1 && latency.p95 == latency.max {
        format!(
            "\n            (p95 to max are one batch's latency: its {} transfers went in one request and into one block; a smaller --batch spreads them)",
            report.batch
        )
    } else {
        String::new()
    };
    let mut text = format!(
        "offered     {offered}\n\
         sent        {} transfers ({} accepted{unsent})\n\
         committed   {} in {:.2} s: {} tx/s\n\
         latency     p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms (submit to block){one_batch}\n\
         blocks      {}\n\
         bench cpu   {:.2} s during the run, {:.2} s signing before it",
        report.sent,
        report.accepted,
        report.committed,
        report.seconds,
        report.committed_per_second,
        report.latency_ms.p50,
        report.latency_ms.p95,
        report.latency_ms.p99,
        report.latency_ms.max,
        report.blocks,
        report.bench_cpu_seconds,
        report.signing_cpu_seconds,
    );
    if let Some(seconds) = report.nodes_cpu_seconds {
        let per_transfer = report
            .nodes_cpu_us_per_transfer
            .map_or_else(|| "-".to_string(), |micros| format!("{micros:.1} us"));
        let nodes = report.nodes_cpu_seconds_each.len();
        text.push_str(&format!(
            "\nnodes cpu   {seconds:.2} s over {nodes} nodes: {per_transfer} per committed transfer (all nodes together)"
        ));
    }
    if !report.rejected.is_empty() {
        text.push_str("\nrejected   ");
        for (code, count) in &report.rejected {
            text.push_str(&format!(" {code}: {count}"));
        }
    }
    text
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat`; 0 where that is not available.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
    (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("max").unwrap(), None);
        assert_eq!(parse_rate("1000").unwrap(), Some(1000));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn percentiles_and_rate_come_from_the_tally() {
        let mut tally = Tally::new(4);
        let start = Instant::now();
        for index in 0..4 {
            tally.sent_at[index] = Some(start);
            tally.committed_at[index] =
                Some(start + Duration::from_millis(10 * (index as u64 + 1)));
        }
        tally.committed = 4;
        tally.sent = 4;
        tally.first_sent = Some(start);
        tally.last_commit = Some(start + Duration::from_millis(40));
        let report = tally.report(4, None, start, 0.0, 0.0);
        assert_eq!(report.latency_ms.p50, 20.0);
        assert_eq!(report.latency_ms.max, 40.0);
        assert_eq!(report.committed_per_second, 100);
        assert_eq!(report.sent, 4);
    }

    #[test]
    fn each_transfer_of_a_batch_has_its_own_latency() {
        // One batch of 200 sent at once, committed over four blocks: the
        // percentiles are over the transfers, so they differ.
        let mut tally = Tally::new(200);
        let start = Instant::now();
        let block_of = |index: usize| -> u64 {
            match index {
                0..120 => 10,
                120..195 => 20,
                195..199 => 30,
                _ => 40,
            }
        };
        for index in 0..200 {
            tally.sent_at[index] = Some(start);
            tally.committed_at[index] = Some(start + Duration::from_millis(block_of(index)));
        }
        tally.committed = 200;
        tally.first_sent = Some(start);
        tally.last_commit = Some(start + Duration::from_millis(40));
        let latency = tally.report(200, None, start, 0.0, 0.0).latency_ms;
        assert_eq!(
            latency,
            Percentiles {
                p50: 10.0,
                p95: 20.0,
                p99: 30.0,
                max: 40.0
            }
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_and_rounded() {
        assert_eq!(percentiles(Vec::new()), Percentiles::default());
        let one = percentiles(vec![15.06]);
        assert_eq!(
            (one.p50, one.p95, one.p99, one.max),
            (15.1, 15.1, 15.1, 15.1)
        );
        // 1..=100 ms in any order: rank ceil(n * p).
        let mut latencies: Vec<f64> = (1..=100).map(f64::from).collect();
        latencies.reverse();
        let spread = percentiles(latencies);
        assert_eq!(
            spread,
            Percentiles {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0,
                max: 100.0
            }
        );
    }

    #[test]
    fn figures_are_rounded() {
        assert_eq!(round_to(15.093_812_000_000_001, MILLISECOND_DECIMALS), 15.1);
        assert_eq!(round_to(0.049_9, MILLISECOND_DECIMALS), 0.0);
        assert_eq!(round_to(2.345_678, SECOND_DECIMALS), 2.346);
        assert_eq!(round_to(0.126, CPU_SECOND_DECIMALS), 0.13);
        assert_eq!(whole_rate(12_710.6), 12_711);
        assert_eq!(whole_rate(0.4), 0);
        assert_eq!(whole_rate(f64::NAN), 0);
        assert_eq!(whole_rate(f64::INFINITY), 0);

        let mut tally = Tally::new(3);
        let start = Instant::now();
        for (index, micros) in [10_123u64, 20_456, 33_333].into_iter().enumerate() {
            tally.sent_at[index] = Some(start);
            tally.committed_at[index] = Some(start + Duration::from_micros(micros));
        }
        tally.committed = 3;
        tally.sent = 3;
        tally.first_sent = Some(start);
        tally.last_commit = Some(start + Duration::from_micros(33_333));
        let report = tally.report(3, Some(100), start, 0.123_456, 1.987_654);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["latency_ms"]["p50"], 20.5);
        assert_eq!(json["latency_ms"]["max"], 33.3);
        assert_eq!(json["seconds"], 0.033);
        assert_eq!(json["committed_per_second"], 90);
        assert_eq!(json["bench_cpu_seconds"], 0.12);
        assert_eq!(json["signing_cpu_seconds"], 1.99);
        let text = serde_json::to_string(&report).unwrap();
        assert!(!text.contains("0000"), "{text}");
    }

    #[test]
    fn durations_and_counts() {
        assert_eq!(parse_bench_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_bench_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_bench_duration("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        assert!(parse_bench_duration("2h").is_err());
        assert!(parse_bench_duration("0s").is_err());
        let ten = Some(Duration::from_secs(10));
        assert_eq!(transfers_to_sign(Some(7), None, None), 7);
        assert_eq!(transfers_to_sign(None, None, Some(5)), DEFAULT_TRANSACTIONS);
        assert_eq!(transfers_to_sign(None, ten, Some(1000)), 10_000);
        assert_eq!(
            transfers_to_sign(None, Some(Duration::from_millis(1500)), Some(3)),
            5
        );
        assert_eq!(
            transfers_to_sign(None, ten, None),
            10 * MAX_RATE_PRESIGN_PER_SECOND
        );
    }

    #[test]
    fn the_progress_line_says_sent_committed_and_rate() {
        let line = progress_line(
            Duration::from_millis(12_040),
            120_000,
            118_000,
            3,
            9_850.4,
            Duration::from_millis(1_002),
        );
        assert_eq!(
            line,
            "  12.0 s  sent   120000  committed   118000  rejected      3     9850 tx/s in the last 1.0 s"
        );
        assert!(!line.contains('\n') && !line.contains('\r'));
    }

    #[test]
    fn the_nodes_cpu_comes_from_their_metrics() {
        let page = "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.34\nprocess_open_fds 40\n";
        assert_eq!(cpu_from_metrics(page), Some(12.34));
        assert_eq!(cpu_from_metrics("process_open_fds 40\n"), None);
        assert_eq!(cpu_from_metrics("process_cpu_seconds_total NaN\n"), None);
        assert_eq!(cpu_from_metrics("process_cpu_seconds_total -1\n"), None);

        let mut report = BenchReport {
            committed: 20_000,
            ..BenchReport::default()
        };
        report.set_nodes_cpu(&Ok(vec![10.0, 20.0]), &Ok(vec![10.5, 21.25]));
        assert_eq!(report.nodes_cpu_seconds, Some(1.75));
        assert_eq!(report.nodes_cpu_seconds_each, vec![0.5, 1.25]);
        // 1.75 s over 20,000 transfers: 87.5 us each.
        assert_eq!(report.nodes_cpu_us_per_transfer, Some(87.5));
        assert!(format_report(&report)
            .contains("nodes cpu   1.75 s over 2 nodes: 87.5 us per committed transfer"));

        // A failed read, or no metrics at all, leaves the figures empty.
        for (before, after) in [
            (Err("down".to_string()), Ok(vec![1.0])),
            (Ok(vec![1.0]), Err("down".to_string())),
            (Ok(Vec::new()), Ok(Vec::new())),
        ] {
            let mut report = BenchReport::default();
            report.set_nodes_cpu(&before, &after);
            assert_eq!(report.nodes_cpu_seconds, None);
            assert!(!format_report(&report).contains("nodes cpu"));
        }
    }

    #[test]
    fn profiles_run_the_standard_loads_in_order() {
        let names = |profile: BenchProfile| -> Vec<&str> {
            profile.loads().iter().map(|load| load.name).collect()
        };
        assert_eq!(
            names(BenchProfile::Light),
            ["light, batches of 50", "light, batches of 10"]
        );
        assert_eq!(
            names(BenchProfile::All),
            [
                "light, batches of 50",
                "light, batches of 10",
                "medium",
                "saturation"
            ]
        );
        // Every load fits what one run may sign.
        for load in BenchProfile::All.loads() {
            let total = transfers_to_sign(None, Some(load.duration), Some(load.rate));
            assert!(total <= BENCH_TRANSACTIONS_MAX, "{load:?}");
            assert!(load.batch <= BENCH_BATCH_MAX, "{load:?}");
        }
    }

    #[test]
    fn a_profile_takes_no_load_flags_and_writes_its_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Bench {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parsed = Bench::try_parse_from(["bench", "--profile", "light"]).unwrap();
        assert_eq!(parsed.args.profile, Some(BenchProfile::Light));
        assert_eq!(parsed.args.out, PathBuf::from("bench-results.json"));
        for flag in [
            ["--rate", "5"],
            ["--batch", "5"],
            ["--txs", "5"],
            ["--duration", "5"],
        ] {
            let mut argv = vec!["bench", "--profile", "all"];
            argv.extend(flag);
            assert!(Bench::try_parse_from(argv).is_err(), "{flag:?}");
        }
        assert!(Bench::try_parse_from(["bench", "--out", "x.json"]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let results = ProfileResults {
            profile: BenchProfile::Light,
            started_unix_seconds: 1,
            cores: 2,
            nodes: vec!["http://127.0.0.1:26601".into()],
            metrics: Vec::new(),
            runs: vec![ProfileRun {
                name: "light, batches of 50",
                report: BenchReport::default(),
            }],
        };
        write_results(&path, &results).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written["profile"], "light");
        assert_eq!(written["runs"][0]["name"], "light, batches of 50");
        assert!(written["runs"][0]["report"]["nodes_cpu_seconds"].is_null());
        assert!(!path.with_extension("json.partial").exists());
    }

    #[test]
    fn cpu_time_is_read() {
        let mut spin = 0u64;
        for value in 0..50_000_000u64 {
            spin = spin.wrapping_add(value ^ (spin >> 3));
        }
        assert!(spin != 1);
        assert!(process_cpu_seconds() > 0.0);
    }
}
