//! `cairnd start`: loads the home (config, genesis, keys), opens the
//! ledger, binds the RPC and metrics listeners, writes `addresses.json`,
//! serves until SIGINT/SIGTERM, then stops taking requests and closes the
//! store.
//!
//! Start-up order: ledger (RocksDB), p2p swarm, RPC and metrics listeners,
//! then the consensus loop on its own thread ([`crate::runtime`]), which
//! first syncs from peers and then joins consensus at the tip. Shutdown
//! runs the other way: stop taking requests, stop consensus between two
//! steps (every WAL entry and commit is already synced), stop the swarm,
//! close the store.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cairn_store::Store;

use cairn_genesis::Genesis;
use serde::Serialize;

use cairn_consensus::DriverConfig;
use tokio::sync::{mpsc, oneshot};

use crate::{
    backend::{NetworkView, NodeBackend, NodeIdentity, ReadinessPolicy},
    block_sync::spawn_block_sync,
    config::{ConfigOverrides, NodeConfig, NodeMode, SyncMode},
    home::{read_key_file, Home},
    host::{ConsensusHost, HostConfig},
    http_server::{self, ServerLimits},
    ledger::Ledger,
    logging::init_logging,
    mempool::MempoolLimits,
    metrics::{self, Metrics},
    rpc,
    runtime::{
        run_dispatcher, run_gossip_batcher, spawn_outbox, ConsensusLoop, GossipQueue, SystemClock,
        TokioTimers, CONSENSUS_INBOX_MAX,
    },
    shutdown::{listen_for_signals, shutdown_channel, Shutdown},
    sign_state::SignState,
    snapshots::{run_snapshotter, Snapshots},
    state_sync::{self, StateSyncStatus},
    NodeError,
};

/// Longest wait for open connections (WebSocket subscribers included) to
/// finish after shutdown was asked for.
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// `addresses.json`: what the running node bound.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Addresses {
    /// Base URL of the RPC server.
    pub rpc: String,
    /// URL of the Prometheus endpoint.
    pub metrics: String,
    /// P2P multiaddrs with the peer id (empty until p2p is wired).
    pub p2p: Vec<String>,
}

/// Loads `config.toml` and applies the overrides.
pub fn load_config(home: &Home, overrides: &ConfigOverrides) -> Result<NodeConfig, NodeError> {
    if !home.config_file().exists() {
        return Err(NodeError::Home(format!(
            "{} does not exist: {} is not a node home. Run `cairnd init --home {}` first, pass the right --home, or try `cairnd start --dev`",
            home.config_file().display(),
            home.root().display(),
            home.root().display()
        )));
    }
    let mut config = NodeConfig::load(&home.config_file())?;
    overrides.apply(&mut config);
    Ok(config)
}

/// Says whether a validator's key is in the genesis set. A key outside it
/// is no error: the node follows the chain, and votes from the height its
/// key enters the set (after its operator bonds to it). Returns the note
/// to log, if any.
pub fn check_validator_key(
    home: &Home,
    config: &NodeConfig,
    genesis: &Genesis,
) -> Result<Option<String>, NodeError> {
    if config.mode != NodeMode::Validator {
        return Ok(None);
    }
    let path = home.validator_key_file();
    let keypair = read_key_file(&path)?;
    if genesis.validators.index_of(&keypair.public_key()).is_none() {
        return Ok(Some(format!(
            "validator key {} is not in the genesis validator set of {} ({} validators): the node follows the chain and votes once the key is bonded (`cairn validator bond --validator-key {}`); set `mode = \"full\"` in {} if it should never vote",
            keypair.public_key().to_hex(),
            home.genesis_file().display(),
            genesis.validators.len(),
            keypair.public_key().to_hex(),
            home.config_file().display()
        )));
    }
    Ok(None)
}

async fn bind(
    address: SocketAddr,
    what: &str,
    key: &str,
    flag: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), NodeError> {
    rpc::bind(address).await.map_err(|error| {
        NodeError::Home(format!(
            "cannot bind the {what} to {address}: {error}. Choose another address with `{key}` in config.toml or {flag} (port 0 picks a free port)"
        ))
    })
}

/// Writes `addresses.json` atomically (a temporary file renamed), so a
/// reader never sees half of it.
fn write_addresses(home: &Home, addresses: &Addresses) -> Result<(), NodeError> {
    let path = home.addresses_file();
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(addresses)
        .map_err(|error| NodeError::Home(format!("cannot encode the addresses: {error}")))?;
    std::fs::write(&temporary, text).map_err(|source| NodeError::Io {
        action: "write",
        path: temporary.clone(),
        source,
    })?;
    std::fs::rename(&temporary, &path).map_err(|source| NodeError::Io {
        action: "rename into place",
        path: path.clone(),
        source,
    })
}

/// Most dropped journal transactions logged one by one at a start (the
/// rest are counted in one line).
const JOURNAL_DROPS_LOGGED_MAX: usize = 20;

/// Reads the mempool journal of `home`, submits its transactions again
/// (gossiping those admitted), logs the ones dropped, and keeps the
/// journal for the RPC's submissions.
fn replay_journal(home: &Home, ledger: &Ledger, gossip: &GossipQueue) -> Result<(), NodeError> {
    let path = home.mempool_journal_file();
    let (mut journal, replay) = crate::journal::Journal::open(&path)?;
    if let Some(reason) = &replay.damaged_tail {
        tracing::warn!(
            path = %path.display(),
            "the mempool journal ends early ({reason}); the transactions before that point are replayed"
        );
    }
    if replay.transactions.is_empty() {
        ledger.set_journal(journal);
        return Ok(());
    }
    let slices: Vec<&[u8]> = replay.transactions.iter().map(Vec::as_slice).collect();
    let results = ledger.submit(&slices);
    let mut admitted = Vec::new();
    let mut dropped = 0usize;
    for (bytes, result) in slices.iter().zip(&results) {
        match result {
            Ok(_) => admitted.push(*bytes),
            Err(rejection) => {
                dropped += 1;
                if dropped <= JOURNAL_DROPS_LOGGED_MAX {
                    let hash = cairn_types::sha256(bytes);
                    tracing::info!(
                        transaction = %hash,
                        reason = rejection.code(),
                        "journal: dropped a transaction that is no longer valid: {rejection}"
                    );
                }
            }
        }
    }
    for bytes in &admitted {
        gossip.push(bytes.to_vec());
    }
    journal.append(&admitted, |_| true)?;
    ledger.set_journal(journal);
    tracing::info!(
        replayed = admitted.len(),
        dropped,
        "journal: {} locally submitted transactions are pending again, {dropped} dropped (committed meanwhile or no longer valid)",
        admitted.len()
    );
    Ok(())
}

/// Runs the node in `home` until a signal; returns after a clean stop.
/// With `announce`, the RPC URL is also printed on stdout (`--dev`).
pub async fn run_node(
    home: &Home,
    config: NodeConfig,
    genesis: Genesis,
    announce: bool,
) -> Result<(), NodeError> {
    let (trigger, shutdown) = shutdown_channel();
    listen_for_signals(trigger)
        .map_err(|error| NodeError::Home(format!("cannot listen for SIGINT/SIGTERM: {error}")))?;
    serve(home, config, genesis, shutdown, announce).await
}

/// [`run_node`] with the shutdown signal given (tests trigger it).
pub async fn serve(
    home: &Home,
    config: NodeConfig,
    genesis: Genesis,
    shutdown: Shutdown,
    announce: bool,
) -> Result<(), NodeError> {
    if let Some(note) = check_validator_key(home, &config, &genesis)? {
        tracing::warn!("{note}");
    }
    let open_files_limit = http_server::raise_open_files_limit();
    let rpc_limits = rpc_limits(&config, open_files_limit);
    let node_key = read_key_file(&home.node_key_file())?;
    let validator_key = match config.mode {
        NodeMode::Validator => Some(read_key_file(&home.validator_key_file())?),
        NodeMode::Full => None,
    };
    let metrics = Arc::new(Metrics::default());
    let limits = MempoolLimits {
        transactions_max: usize::try_from(config.mempool.transactions_max).unwrap_or(usize::MAX),
        bytes_max: usize::try_from(config.mempool.bytes_max).unwrap_or(usize::MAX),
        min_fee: config.mempool.min_fee,
    };
    let data_dir = home.data_dir();
    let (ledger, store_is_empty) = {
        let data_dir = data_dir.clone();
        let metrics = Arc::clone(&metrics);
        tokio::task::spawn_blocking(move || open_ledger(genesis, &data_dir, limits, metrics))
            .await
            .map_err(|error| NodeError::Home(format!("opening the store panicked: {error}")))??
    };
    let ledger = Arc::new(ledger);
    ledger
        .store()
        .set_history_index(config.rpc.history_index)
        .map_err(|error| {
            NodeError::Home(format!(
                "cannot record rpc.history_index = {} in the store: {error}",
                config.rpc.history_index
            ))
        })?;
    ledger.set_sender_limits(crate::mempool::SenderLimits {
        pending_max: usize::try_from(config.mempool.sender_pending_max).unwrap_or(usize::MAX),
        queued_ttl: std::time::Duration::from_millis(config.mempool.ttl_ms),
    });
    ledger.set_peer_gossip_rate(config.mempool.peer_transactions_per_second);
    let state_sync_status = (config.sync.mode == SyncMode::Snapshot && store_is_empty)
        .then(|| Arc::new(StateSyncStatus::default()));
    if config.sync.mode == SyncMode::Snapshot && !store_is_empty {
        tracing::info!(
            height = ledger.tip().height.0,
            "state sync is on but the store already holds the chain; syncing blocks from its tip"
        );
    }
    let snapshots = Arc::new(Snapshots::open(
        &home.snapshots_dir(),
        config.snapshot.keep,
    )?);
    let tip = ledger.tip();
    tracing::info!(
        chain_id = %ledger.chain_id(),
        height = tip.height.0,
        hash = %tip.hash,
        data = %data_dir.display(),
        "opened the ledger"
    );

    let (rpc_listener, rpc_address) = bind(
        config.rpc.listen,
        "RPC server",
        "rpc.listen",
        "--rpc-listen / CAIRN_RPC_LISTEN",
    )
    .await?;
    let (metrics_listener, metrics_address) = bind(
        config.metrics.listen,
        "metrics server",
        "metrics.listen",
        "--metrics-listen / CAIRN_METRICS_LISTEN",
    )
    .await?;

    let mut p2p_config = p2p_config(&config, ledger.chain_id(), ledger.genesis_hash(), &node_key)?;
    p2p_config.address_book_file = Some(home.address_book_file());
    let (client, events, p2p_task) = cairn_p2p::spawn(p2p_config).map_err(|error| {
        NodeError::Home(format!(
            "cannot start p2p networking: {error}. If another process uses that port, choose another address with `p2p.listen` in config.toml or --p2p-listen / CAIRN_P2P_LISTEN (port 0 picks a free port)"
        ))
    })?;
    let local_peer = client.local_peer_id();
    metrics.set_p2p(client.metrics().clone());
    metrics.set_data_dir(data_dir.clone());

    let network = Arc::new(NetworkView::new(Arc::clone(&metrics)));
    let (gossip, gossip_queue) = GossipQueue::new();
    replay_journal(home, &ledger, &gossip)?;
    let consensus_board = Arc::new(crate::consensus_view::ConsensusBoard::new());
    let mut backend = NodeBackend::new(
        Arc::clone(&ledger),
        Arc::clone(&network),
        NodeIdentity {
            node_id: local_peer.to_string(),
            moniker: config.moniker.clone(),
            validator: config.mode == NodeMode::Validator,
        },
    )
    .with_gossip(gossip)
    .with_consensus(Arc::clone(&consensus_board))
    .with_readiness(ReadinessPolicy {
        wait_for_transactions: config.consensus.wait_for_transactions,
        block_interval_max_ms: config.consensus.block_interval_max_ms,
        stall_ms: if config.rpc.ready_stall_ms > 0 {
            config.rpc.ready_stall_ms
        } else {
            ReadinessPolicy::derived_stall_ms(
                &ledger.genesis().consensus_params,
                config.consensus.timeout_commit_ms,
            )
        },
    });
    backend = backend.with_snapshots(Arc::clone(&snapshots));
    if let Some(status) = &state_sync_status {
        backend = backend.with_state_sync(Arc::clone(status));
    }
    let addresses = Arc::new(std::sync::Mutex::new(Addresses {
        rpc: format!("http://{rpc_address}"),
        metrics: format!("http://{metrics_address}/metrics"),
        p2p: Vec::new(),
    }));
    write_addresses(home, &lock_addresses(&addresses))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        chain_id = %ledger.chain_id(),
        genesis_hash = %ledger.genesis_hash(),
        node_id = %local_peer,
        mode = ?config.mode,
        rpc = %format!("http://{rpc_address}"),
        metrics = %format!("http://{metrics_address}/metrics"),
        addresses_file = %home.addresses_file().display(),
        "cairnd {} started",
        env!("CARGO_PKG_VERSION")
    );
    if config.p2p.bootstrap.is_empty() {
        tracing::info!(
            "no bootstrap peers configured (p2p.bootstrap): waiting for peers to dial this node"
        );
    }

    let (inbox_sender, inbox) = mpsc::channel(CONSENSUS_INBOX_MAX);
    let on_listen = {
        let addresses = Arc::clone(&addresses);
        let home = home.clone();
        move |address: String| {
            tracing::info!(p2p = %address, "p2p listening");
            let mut current = lock_addresses(&addresses);
            current.p2p.push(address);
            if let Err(error) = write_addresses(&home, &current) {
                tracing::warn!("{error}");
            }
        }
    };
    // One stop signal for every task: the caller's shutdown, or a fatal
    // consensus error.
    let (stop_trigger, stop) = shutdown_channel();
    let stop_trigger = Arc::new(stop_trigger);
    {
        let stop_trigger = Arc::clone(&stop_trigger);
        let mut shutdown = shutdown;
        tokio::spawn(async move {
            shutdown.requested().await;
            stop_trigger.trigger();
        });
    }
    let rpc_server = tokio::spawn(http_server::serve(
        rpc_listener,
        rpc::router(Arc::new(backend)),
        rpc_limits,
        stop.clone(),
    ));
    let metrics_server = tokio::spawn(http_server::serve(
        metrics_listener,
        metrics::router(Arc::clone(&metrics)),
        ServerLimits {
            connections_max: METRICS_CONNECTIONS_MAX,
            header_read_timeout: rpc_limits.header_read_timeout,
        },
        stop.clone(),
    ));
    if let Some(status) = &state_sync_status {
        // Nothing else commits while the state is restored: block sync and
        // consensus start after it.
        network.set_sync(true, 0);
        let restored =
            state_sync::restore(&client, &ledger, &config.sync, status, stop.clone()).await;
        network.set_sync(false, 0);
        if let Err(error) = restored {
            tracing::error!("{error}");
            stop_trigger.trigger();
            let _ = client.shutdown().await;
            return Err(error);
        }
    }
    tokio::spawn(run_snapshotter(
        Arc::clone(&ledger),
        Arc::clone(&snapshots),
        config.snapshot.interval,
        stop.clone(),
    ));
    let sync = spawn_block_sync(
        client.clone(),
        Arc::clone(&ledger),
        Arc::clone(&network),
        inbox_sender.clone(),
        stop.clone(),
    );
    tokio::spawn(run_dispatcher(
        events,
        Arc::clone(&ledger),
        Arc::clone(&network),
        inbox_sender.clone(),
        on_listen,
        local_peer,
        sync.clone(),
        Arc::clone(&snapshots),
        client.clone(),
    ));
    tokio::spawn(run_gossip_batcher(client.clone(), gossip_queue));
    tokio::spawn(crate::runtime::run_peer_scores(
        client.clone(),
        Arc::clone(&network),
    ));
    crate::pruning::spawn_pruning(
        Arc::clone(&ledger),
        config.pruning.keep_blocks,
        stop.clone(),
    );
    crate::scrub::spawn_scrub(
        Arc::clone(&ledger),
        client.clone(),
        data_dir.clone(),
        stop.clone(),
    );

    let mut driver_config = DriverConfig::new(
        ledger.chain_id().clone(),
        ledger.genesis().validators.clone(),
        ledger.genesis().consensus_params.clone(),
        ledger.genesis().genesis_time,
    );
    driver_config.timeout_commit_ms = config.consensus.timeout_commit_ms;
    let sign_state = match config.mode {
        NodeMode::Validator => {
            let sign_state = SignState::open(&home.sign_state_file())?;
            if let Some(last) = sign_state.last() {
                tracing::info!(
                    height = last.height.0,
                    round = last.round.0,
                    step = ?last.step,
                    "sign state: never signing below the last signed message"
                );
            }
            Some(sign_state)
        }
        NodeMode::Full => None,
    };
    let mut host = ConsensusHost::new(
        Arc::clone(&ledger),
        driver_config,
        validator_key,
        spawn_outbox(client.clone(), inbox_sender),
        TokioTimers::default(),
        SystemClock,
        HostConfig {
            wait_for_transactions: config.consensus.wait_for_transactions,
            block_interval_max_ms: config.consensus.block_interval_max_ms,
        },
    )?;
    if let Some(sign_state) = sign_state {
        host = host.with_sign_state(sign_state);
    }
    let consensus = ConsensusLoop::new(host, Arc::clone(&ledger), sync, inbox)
        .with_board(Arc::clone(&consensus_board));
    let (consensus_done, mut consensus_result) = oneshot::channel();
    let consensus_shutdown = stop.clone();
    std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(consensus.run(consensus_shutdown)),
                Err(error) => Err(NodeError::Consensus(format!(
                    "cannot start the consensus runtime: {error}"
                ))),
            };
            let _ = consensus_done.send(result);
        })
        .map_err(|error| NodeError::Home(format!("cannot start the consensus thread: {error}")))?;

    tokio::spawn(run_informant(
        Arc::clone(&ledger),
        Arc::clone(&network),
        !crate::backend::needs_peers(config.mode == NodeMode::Validator, ledger.genesis()),
        stop.clone(),
    ));
    {
        // Queued transactions past `mempool.ttl_ms` leave even while no
        // block commits and nothing is submitted.
        let ledger = Arc::clone(&ledger);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(crate::mempool::EXPIRY_CHECK_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.requested() => return,
                    _ = interval.tick() => ledger.expire_mempool(),
                }
            }
        });
    }
    if announce {
        // Last and alone, easy to spot (and to parse) among the log lines.
        println!("metrics: http://{metrics_address}/metrics");
        println!("dev accounts: `cairn keys import-dev` imports their keys as dev-0 .. dev-9");
        println!();
        println!("RPC URL: http://{rpc_address}");
    }
    let mut stop = stop;
    let mut failure = None;
    let mut consensus_finished = false;
    tokio::select! {
        _ = stop.requested() => {}
        result = &mut consensus_result => {
            consensus_finished = true;
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error),
                // The thread ended without an answer: it panicked.
                Err(_) => Some(NodeError::Consensus("the consensus thread stopped unexpectedly".into())),
            };
            if let Some(error) = error {
                tracing::error!("consensus stopped: {error}");
                failure = Some(error);
            }
            stop_trigger.trigger();
        }
    }
    tracing::info!("no longer taking requests");
    for mut server in [rpc_server, metrics_server] {
        match tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!("server stopped with an error: {error}"),
            Ok(Err(error)) => tracing::warn!("server task failed: {error}"),
            Err(_) => {
                tracing::warn!("connections still open after {SHUTDOWN_GRACE_MS} ms; closing them");
                server.abort();
                let _ = server.await;
            }
        }
    }
    // Consensus stops between two steps; every WAL entry and commit it
    // made is already synced.
    if !consensus_finished {
        match tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), consensus_result).await
        {
            Ok(Ok(Err(error))) => tracing::warn!("consensus stopped with an error: {error}"),
            Ok(_) => {}
            Err(_) => tracing::warn!("consensus did not stop within {SHUTDOWN_GRACE_MS} ms"),
        }
    }
    if let Err(error) = client.shutdown().await {
        tracing::debug!("p2p already stopped: {error}");
    }
    let _ = tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), p2p_task).await;
    let _ = std::fs::remove_file(home.addresses_file());
    // The last reference closes the store (every write was already synced).
    drop(client);
    match Arc::try_unwrap(ledger) {
        Ok(ledger) => drop(ledger),
        Err(_) => {
            tracing::debug!("the ledger is still referenced by a task; the store closes at exit")
        }
    }
    match failure {
        Some(error) => Err(error),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

/// Opens the ledger in `data_dir`; says whether its store holds no block
/// (a home state sync may restore into). A store holding an interrupted
/// state-sync restore (which only ever starts in a store without blocks)
/// is deleted and created again from the genesis first.
fn open_ledger(
    genesis: Genesis,
    data_dir: &std::path::Path,
    limits: MempoolLimits,
    metrics: Arc<Metrics>,
) -> Result<(Ledger, bool), NodeError> {
    let home_error = |error: crate::ledger::LedgerError| NodeError::Home(error.to_string());
    let mut store = Ledger::open_store(&genesis, data_dir).map_err(home_error)?;
    let interrupted = store
        .restore_in_progress()
        .map_err(|error| NodeError::Home(error.to_string()))?;
    if let Some(height) = interrupted {
        tracing::warn!(
            height = height.0,
            data = %data_dir.display(),
            "a state-sync restore was interrupted; deleting its partial state and starting again from an empty store"
        );
        drop(store);
        std::fs::remove_dir_all(data_dir).map_err(|source| NodeError::Io {
            action: "delete the partial restore in",
            path: data_dir.to_path_buf(),
            source,
        })?;
        store = Ledger::open_store(&genesis, data_dir).map_err(home_error)?;
    }
    let empty = store.latest_height() == cairn_types::Height::GENESIS
        && store.snapshot_base() == cairn_types::Height::GENESIS;
    let ledger =
        Ledger::with_store(genesis, Arc::new(store), limits, metrics).map_err(home_error)?;
    Ok((ledger, empty))
}

fn lock_addresses(addresses: &std::sync::Mutex<Addresses>) -> std::sync::MutexGuard<'_, Addresses> {
    addresses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The p2p configuration from `config.toml`: listen addresses and
/// bootstrap peers parsed as multiaddrs, with errors naming the key.
fn p2p_config(
    config: &NodeConfig,
    chain_id: &cairn_types::ChainId,
    genesis_hash: cairn_types::Hash,
    node_key: &cairn_types::Keypair,
) -> Result<cairn_p2p::Config, NodeError> {
    let keypair = cairn_p2p::keypair_from_bytes(&node_key.seed()).map_err(|error| {
        NodeError::Home(format!("the node key cannot be used for p2p: {error}"))
    })?;
    let mut p2p = cairn_p2p::Config::new(chain_id.clone(), keypair);
    p2p.genesis_hash = genesis_hash.to_string();
    let parse = |key: &str, text: &String| {
        text.parse::<cairn_p2p::Multiaddr>().map_err(|error| {
            NodeError::Home(format!(
                "`{key}` holds {text:?}, which is not a multiaddr ({error}); write it like /ip4/127.0.0.1/tcp/26656"
            ))
        })
    };
    p2p.listen_addresses = config
        .p2p
        .listen
        .iter()
        .map(|text| parse("p2p.listen", text))
        .collect::<Result<_, _>>()?;
    p2p.bootstrap = config
        .p2p
        .bootstrap
        .iter()
        .map(|text| {
            let address = parse("p2p.bootstrap", text)?;
            if !text.contains("/p2p/") {
                return Err(NodeError::Home(format!(
                    "`p2p.bootstrap` holds {text:?} without a peer id; append /p2p/<peer id> (`cairnd show-node-id` on that node prints it)"
                )));
            }
            Ok(address)
        })
        .collect::<Result<_, _>>()?;
    p2p.external_addresses = config
        .p2p
        .external_addresses
        .iter()
        .map(|text| parse("p2p.external_addresses", text))
        .collect::<Result<_, _>>()?;
    p2p.mdns = config.p2p.mdns;
    p2p.target_peers = usize::try_from(config.p2p.peers_target).unwrap_or(usize::MAX);
    Ok(p2p)
}

/// How often the informant looks at the node.
pub const INFORMANT_INTERVAL: Duration = Duration::from_secs(10);

/// Says every [`INFORMANT_INTERVAL`] what a node that makes no progress is
/// doing: alone (no peers), catching up, or idle (no new block), with its
/// height, like Substrate's `Idle (0 peers), best: #N`. Quiet while blocks
/// come.
async fn run_informant(
    ledger: Arc<Ledger>,
    network: Arc<NetworkView>,
    alone_by_design: bool,
    mut stop: Shutdown,
) {
    let mut interval = tokio::time::interval(INFORMANT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last_height = ledger.tip().height;
    loop {
        tokio::select! {
            _ = stop.requested() => return,
            _ = interval.tick() => {}
        }
        let tip = ledger.tip();
        let peers = network.peers().len();
        let (pending, _) = ledger.mempool_size();
        if peers == 0 && !alone_by_design {
            tracing::warn!(
                height = tip.height.0,
                "no peers (0 connected), best: #{}; this node cannot make progress alone: check p2p.bootstrap and that its peers run and are reachable",
                tip.height.0
            );
        } else if network.catching_up() {
            tracing::info!(
                height = tip.height.0,
                peers,
                "catching up ({peers} peers), best: #{}",
                tip.height.0
            );
        } else if tip.height == last_height {
            tracing::info!(
                height = tip.height.0,
                peers,
                pending,
                "idle ({peers} peers), best: #{}, {pending} pending transactions",
                tip.height.0
            );
        }
        last_height = tip.height;
    }
}

/// Open connections of the metrics server (scrapers are few).
pub const METRICS_CONNECTIONS_MAX: usize = 64;
/// File descriptors kept for p2p, the store and the rest of the process,
/// whatever `rpc.connections_max` says: the store's table files
/// (`cairn_store::OPEN_FILES_MAX`) and this many more.
pub const DESCRIPTORS_RESERVED: u64 = 512;

/// The RPC server's limits: `rpc.connections_max`, lowered when the open
/// files limit would not leave the reserve for everything else.
fn rpc_limits(config: &NodeConfig, open_files_limit: u64) -> ServerLimits {
    let reserved = DESCRIPTORS_RESERVED
        + u64::try_from(cairn_store::OPEN_FILES_MAX).unwrap_or(0)
        + METRICS_CONNECTIONS_MAX as u64;
    let available = open_files_limit.saturating_sub(reserved).max(16);
    let configured = u64::from(config.rpc.connections_max).max(1);
    if configured > available {
        tracing::warn!(
            "rpc.connections_max is {configured} but the open files limit ({open_files_limit}) leaves room for {available}; using {available} (raise the hard limit with `ulimit -Hn` or LimitNOFILE=)"
        );
    }
    ServerLimits {
        connections_max: usize::try_from(configured.min(available)).unwrap_or(usize::MAX),
        header_read_timeout: Duration::from_millis(config.rpc.header_read_timeout_ms.max(1)),
    }
}

/// Loads everything `cairnd start` needs from `home` and runs the node.
/// With `announce`, the RPC URL is also printed on stdout.
pub fn start(home: &Home, overrides: &ConfigOverrides, announce: bool) -> Result<(), NodeError> {
    let config = load_config(home, overrides)?;
    init_logging(config.log.format, &config.log.filter)?;
    let genesis = Genesis::load(&home.genesis_file())?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| NodeError::Home(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(run_node(home, config, genesis, announce))
}
