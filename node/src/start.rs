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

use cairn_genesis::Genesis;
use serde::Serialize;

use cairn_consensus::DriverConfig;
use tokio::sync::{mpsc, oneshot};

use crate::{
    backend::{NetworkView, NodeBackend, NodeIdentity},
    config::{ConfigOverrides, NodeConfig, NodeMode},
    home::{read_key_file, Home},
    host::{ConsensusHost, HostConfig},
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

/// Checks that a validator's key is in the genesis set.
pub fn check_validator_key(
    home: &Home,
    config: &NodeConfig,
    genesis: &Genesis,
) -> Result<(), NodeError> {
    if config.mode != NodeMode::Validator {
        return Ok(());
    }
    let path = home.validator_key_file();
    let keypair = read_key_file(&path)?;
    if genesis.validators.index_of(&keypair.public_key()).is_none() {
        return Err(NodeError::KeyFile {
            path,
            message: format!(
                "this node runs as a validator but its key {} is not in the validator set of {} ({} validators). Set `mode = \"full\"` in {} (or pass --mode full) to follow the chain without voting, or use the key of a genesis validator",
                keypair.public_key().to_hex(),
                home.genesis_file().display(),
                genesis.validators.len(),
                home.config_file().display()
            ),
        });
    }
    Ok(())
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
    check_validator_key(home, &config, &genesis)?;
    let node_key = read_key_file(&home.node_key_file())?;
    let validator_key = match config.mode {
        NodeMode::Validator => Some(read_key_file(&home.validator_key_file())?),
        NodeMode::Full => None,
    };
    let metrics = Arc::new(Metrics::default());
    let limits = MempoolLimits {
        transactions_max: usize::try_from(config.mempool.transactions_max).unwrap_or(usize::MAX),
        bytes_max: usize::try_from(config.mempool.bytes_max).unwrap_or(usize::MAX),
    };
    let data_dir = home.data_dir();
    let ledger = {
        let data_dir = data_dir.clone();
        let metrics = Arc::clone(&metrics);
        tokio::task::spawn_blocking(move || Ledger::open(genesis, &data_dir, limits, metrics))
            .await
            .map_err(|error| NodeError::Home(format!("opening the store panicked: {error}")))?
            .map_err(|error| NodeError::Home(error.to_string()))?
    };
    let ledger = Arc::new(ledger);
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

    let p2p_config = p2p_config(&config, ledger.chain_id(), &node_key)?;
    let (client, events, p2p_task) = cairn_p2p::spawn(p2p_config).map_err(|error| {
        NodeError::Home(format!(
            "cannot start p2p networking: {error}. If another process uses that port, choose another address with `p2p.listen` in config.toml or --p2p-listen / CAIRN_P2P_LISTEN (port 0 picks a free port)"
        ))
    })?;
    let local_peer = client.local_peer_id();

    let network = Arc::new(NetworkView::new(Arc::clone(&metrics)));
    let (gossip, gossip_queue) = GossipQueue::new();
    let backend = NodeBackend::new(
        Arc::clone(&ledger),
        Arc::clone(&network),
        NodeIdentity {
            node_id: local_peer.to_string(),
            moniker: config.moniker.clone(),
            validator: config.mode == NodeMode::Validator,
        },
    )
    .with_gossip(gossip);
    let addresses = Arc::new(std::sync::Mutex::new(Addresses {
        rpc: format!("http://{rpc_address}"),
        metrics: format!("http://{metrics_address}/metrics"),
        p2p: Vec::new(),
    }));
    write_addresses(home, &lock_addresses(&addresses))?;
    if announce {
        println!("RPC URL: http://{rpc_address}");
        println!("metrics: http://{metrics_address}/metrics");
    }
    tracing::info!(
        rpc = %format!("http://{rpc_address}"),
        metrics = %format!("http://{metrics_address}/metrics"),
        peer_id = %local_peer,
        file = %home.addresses_file().display(),
        "listening"
    );

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
    tokio::spawn(run_dispatcher(
        events,
        Arc::clone(&ledger),
        Arc::clone(&network),
        inbox_sender.clone(),
        on_listen,
        local_peer,
    ));
    tokio::spawn(run_gossip_batcher(client.clone(), gossip_queue));

    let mut driver_config = DriverConfig::new(
        ledger.chain_id().clone(),
        ledger.genesis().validators.clone(),
        ledger.genesis().consensus_params.clone(),
        ledger.genesis().genesis_time,
    );
    driver_config.timeout_commit_ms = config.consensus.timeout_commit_ms;
    let host = ConsensusHost::new(
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
    let consensus = ConsensusLoop::new(
        host,
        Arc::clone(&ledger),
        client.clone(),
        Arc::clone(&network),
        inbox,
    );
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

    let rpc_server = tokio::spawn(serve_router(
        rpc_listener,
        rpc::router(Arc::new(backend)),
        stop.clone(),
    ));
    let metrics_server = tokio::spawn(serve_router(
        metrics_listener,
        metrics::router(Arc::clone(&metrics)),
        stop.clone(),
    ));
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
    node_key: &cairn_types::Keypair,
) -> Result<cairn_p2p::Config, NodeError> {
    let keypair = cairn_p2p::keypair_from_bytes(&node_key.seed()).map_err(|error| {
        NodeError::Home(format!("the node key cannot be used for p2p: {error}"))
    })?;
    let mut p2p = cairn_p2p::Config::new(chain_id.clone(), keypair);
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
    p2p.mdns = config.p2p.mdns;
    p2p.target_peers = usize::try_from(config.p2p.peers_target).unwrap_or(usize::MAX);
    Ok(p2p)
}

async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.requested().await })
        .await
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
