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
//!    the last commit), latency percentiles, rejections by reason, and the
//!    CPU this process used, since it shares the machine with the nodes.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
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
/// Most nonce look-ups in flight at once while preparing.
const NONCE_LOOKUPS_IN_FLIGHT_MAX: usize = 32;
/// Transfers pre-signed per second of `--duration` with `--rate max`.
const MAX_RATE_PRESIGN_PER_SECOND: u64 = 40_000;
/// Interval of the progress line.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Block events buffered between the stream reader and the tally.
const BLOCK_EVENTS_MAX: usize = 1_024;

/// `cairn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// RPC URL of a node to submit to (repeatable; batches go round-robin).
    /// The first one's block stream times the commits.
    #[arg(
        long = "node",
        value_name = "URL",
        default_value = "http://127.0.0.1:26601"
    )]
    pub nodes: Vec<String>,
    /// Directory of funded account key files (unencrypted): a devnet made
    /// with `--bench-accounts N` writes them to DIR/bench-keys.
    #[arg(long, value_name = "DIR", default_value = "devnet/bench-keys")]
    pub keys_dir: PathBuf,
    /// Use only the first N accounts of the directory.
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,
    /// Number of transfers to send [default: 10000 unless --duration is given].
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub txs: Option<u64>,
    /// Send for this many seconds instead of a fixed number.
    #[arg(long, value_name = "S")]
    pub duration: Option<u64>,
    /// Offered load in transfers per second, or `max`.
    #[arg(long, value_name = "R|max", default_value = "max")]
    pub rate: String,
    /// Transfers per `POST /txs`.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch: usize,
    /// How long to wait for the last commits after the last submission, in seconds.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub settle: u64,
    /// Print the figures as JSON only.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    /// Transfers signed for the run.
    pub transactions: u64,
    /// Transfers the nodes accepted.
    pub accepted: u64,
    /// Transfers committed (seen in a block).
    pub committed: u64,
    /// Offered load (`null` for max).
    pub offered_per_second: Option<u64>,
    /// Seconds from the first submission to the last commit.
    pub seconds: f64,
    /// Committed transfers per second over that window.
    pub committed_per_second: f64,
    /// Submit-to-commit latency percentiles, in milliseconds.
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
}

/// Latency percentiles.
#[derive(Debug, Default, Serialize)]
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

/// Runs `cairn bench`.
pub async fn run(args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    let rate = parse_rate(&args.rate)?;
    if args.batch == 0 || args.batch > BENCH_BATCH_MAX {
        return Err(bench_error(format!(
            "--batch {} is out of range; use 1 to {BENCH_BATCH_MAX}",
            args.batch
        )));
    }
    let total = match (args.txs, args.duration, rate) {
        (Some(count), _, _) => count,
        (None, Some(seconds), Some(rate)) => seconds.saturating_mul(rate),
        (None, Some(seconds), None) => seconds.saturating_mul(MAX_RATE_PRESIGN_PER_SECOND),
        (None, None, _) => 10_000,
    };
    if total == 0 || total > BENCH_TRANSACTIONS_MAX {
        return Err(bench_error(format!(
            "the run would send {total} transfers; use --txs or --duration and --rate to send 1 to {BENCH_TRANSACTIONS_MAX}"
        )));
    }
    let clients = args
        .nodes
        .iter()
        .map(|url| NodeClient::new(url))
        .collect::<Result<Vec<_>>>()?;
    let keys = load_keys(&args.keys_dir, args.accounts)?;
    let (status, _) = clients[0].status().await?;
    let chain_id = ChainId::new(&status.chain_id)
        .map_err(|error| bench_error(format!("the node reports a bad chain id: {error}")))?;
    let nonces = next_nonces(&clients[0], &keys).await?;
    if !args.json {
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

    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let in_flight = Arc::new(Semaphore::new(BENCH_REQUESTS_IN_FLIGHT_MAX));
    let batches: Vec<Vec<(usize, String)>> = signed
        .into_iter()
        .enumerate()
        .map(|(index, (_, hex))| (index, hex))
        .collect::<Vec<_>>()
        .chunks(args.batch)
        .map(<[(usize, String)]>::to_vec)
        .collect();
    let batch_count = batches.len();
    let mut submitted_all = false;
    let mut batches = batches.into_iter().enumerate();
    let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_submission = started;
    let mut submitters = Vec::with_capacity(batch_count);
    loop {
        // Submit every batch that is due.
        while !submitted_all {
            let Some((number, batch)) = batches.next() else {
                submitted_all = true;
                last_submission = Instant::now();
                break;
            };
            if let Some(rate) = rate {
                let due =
                    started + Duration::from_secs_f64((number * args.batch) as f64 / rate as f64);
                // Blocks keep being tallied while the batch is not due.
                while due > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        Some(event) = blocks.recv() => tally_block(&tally, &index_of, event),
                    }
                }
            }
            let permit = Arc::clone(&in_flight)
                .acquire_owned()
                .await
                .map_err(|_| bench_error("the submission limiter closed"))?;
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
        if submitted_all && last_submission.elapsed() > Duration::from_secs(args.settle) {
            if !args.json {
                eprintln!(
                    "\n{pending} transfers were not committed within {} s",
                    args.settle
                );
            }
            break;
        }
        tokio::select! {
            Some(event) = blocks.recv() => tally_block(&tally, &index_of, event),
            _ = progress.tick() => {
                if !args.json {
                    let tally = lock(&tally);
                    let elapsed = started.elapsed().as_secs_f64().max(0.001);
                    eprint!(
                        "\r{:>6.1} s  sent {:>8}  committed {:>8}  rejected {:>6}  {:>8.0} tx/s   ",
                        elapsed,
                        tally.sent,
                        tally.committed,
                        tally.rejected.values().sum::<u64>(),
                        tally.committed as f64 / elapsed
                    );
                }
            }
        }
    }
    for submitter in submitters {
        let _ = submitter.await;
    }
    reader.abort();
    let bench_cpu_seconds = process_cpu_seconds() - cpu_before;
    let report = lock(&tally).report(total, rate, started, bench_cpu_seconds, signing_cpu_seconds);
    if args.json {
        write_json(out, &report)
    } else {
        eprintln!();
        write_line(out, &format_report(&report))
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

    fn report(
        &self,
        total: u64,
        rate: Option<u64>,
        started: Instant,
        bench_cpu_seconds: f64,
        signing_cpu_seconds: f64,
    ) -> BenchReport {
        let mut latencies: Vec<f64> = self
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
        latencies.sort_by(f64::total_cmp);
        let percentile = |fraction: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let rank =
                ((latencies.len() as f64 * fraction).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        };
        let seconds = match (self.first_sent, self.last_commit) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => started.elapsed().as_secs_f64(),
        }
        .max(0.001);
        BenchReport {
            transactions: total,
            accepted: self.accepted,
            committed: self.committed,
            offered_per_second: rate,
            seconds,
            committed_per_second: self.committed as f64 / seconds,
            latency_ms: Percentiles {
                p50: percentile(0.50),
                p95: percentile(0.95),
                p99: percentile(0.99),
                max: latencies.last().copied().unwrap_or(0.0),
            },
            rejected: self.rejected.clone(),
            request_errors: self.request_errors,
            bench_cpu_seconds,
            signing_cpu_seconds,
            blocks: self.blocks,
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
    let mut text = format!(
        "offered     {offered}\n\
         sent        {} transfers ({} accepted)\n\
         committed   {} in {:.2} s: {:.0} tx/s\n\
         latency     p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms (submit to block)\n\
         blocks      {}\n\
         bench cpu   {:.2} s during the run, {:.2} s signing before it",
        report.transactions,
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
        tally.first_sent = Some(start);
        tally.last_commit = Some(start + Duration::from_millis(40));
        let report = tally.report(4, None, start, 0.0, 0.0);
        assert_eq!(report.latency_ms.p50.round() as u64, 20);
        assert_eq!(report.latency_ms.max.round() as u64, 40);
        assert_eq!(report.committed_per_second.round() as u64, 100);
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
