//! Real swarms on 127.0.0.1 (port 0): discovery through one bootstrap node,
//! gossip to every peer, scoring and bans, bad payloads, block sync, restart
//! with the same key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_p2p::limits::{SYNC_RANGE_BLOCKS_MAX, SYNC_REQUEST_BYTES_MAX, SYNC_TRANSACTIONS_MAX};
use cairn_p2p::{
    generate_keypair, load_or_generate_keypair, Error, PublishOutcome, RoundStateRequest,
    SyncRequest, SyncResponse, Topic,
};
use cairn_types::{sha256, Height, Round};
use common::*;

/// Starts `count` nodes; all but the first know only the first.
async fn star(count: usize) -> Vec<Node> {
    let first = start(config(generate_keypair())).await;
    let bootstrap = first.address.clone();
    let mut nodes = vec![first];
    for _ in 1..count {
        let mut config = config(generate_keypair());
        config.bootstrap = vec![bootstrap.clone()];
        nodes.push(start(config).await);
    }
    nodes
}

async fn wait_full_mesh(nodes: &[Node]) {
    let ids: Vec<_> = nodes.iter().map(|n| n.peer_id).collect();
    for node in nodes {
        let expected: HashSet<_> = ids.iter().copied().filter(|p| *p != node.peer_id).collect();
        wait_for("every node connected to every other", DEADLINE, || async {
            peer_set(&node.client).await.is_superset(&expected)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_knowing_one_bootstrap_connect_to_each_other() {
    init_tracing();
    let started = Instant::now();
    let nodes = star(5).await;
    wait_full_mesh(&nodes).await;
    eprintln!("full mesh of 5 after {:?}", started.elapsed());
    for node in &nodes {
        assert_eq!(node.client.metrics().snapshot().peers_connected, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_the_other_four_and_duplicates_are_ok() {
    init_tracing();
    let mut nodes = star(5).await;
    wait_full_mesh(&nodes).await;
    let publisher = nodes[0].client.clone();
    wait_for("every peer subscribed", DEADLINE, || async {
        publisher
            .topic_peers(Topic::Transactions)
            .await
            .unwrap()
            .len()
            == 4
    })
    .await;
    let payload = b"a batch of transactions".to_vec();
    let outcome = publisher
        .publish(Topic::Transactions, payload.clone())
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Sent);
    for node in nodes.iter_mut().skip(1) {
        wait_for_gossip(node, &payload, DEADLINE).await;
    }
    let again = publisher
        .publish(Topic::Transactions, payload.clone())
        .await
        .unwrap();
    assert_eq!(again, PublishOutcome::Duplicate);
    // Another topic works too.
    let decision = b"decision: certificate and hash".to_vec();
    publisher
        .publish(Topic::Decisions, decision.clone())
        .await
        .unwrap();
    for node in nodes.iter_mut().skip(1) {
        wait_for_gossip(node, &decision, DEADLINE).await;
    }
    let metrics = publisher.metrics().snapshot();
    assert!(metrics.gossip_bytes_out >= payload.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_before_any_peer_subscribes_is_buffered_then_sent() {
    init_tracing();
    let early = start(config(generate_keypair())).await;
    let payload = b"published while alone".to_vec();
    let outcome = early
        .client
        .publish(Topic::Consensus, payload.clone())
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Buffered);
    let mut late_config = config(generate_keypair());
    late_config.bootstrap = vec![early.address.clone()];
    let mut late = start(late_config).await;
    wait_for_gossip(&mut late, &payload, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_messages_are_all_rejected_is_disconnected_and_banned() {
    init_tracing();
    let judge = start(config(generate_keypair())).await;
    let mut offender_config = config(generate_keypair());
    offender_config.bootstrap = vec![judge.address.clone()];
    let offender = start(offender_config).await;
    judge
        .policy
        .lock()
        .unwrap()
        .reject_from
        .insert(offender.peer_id);
    wait_for("connection", DEADLINE, || async {
        peer_set(&judge.client).await.contains(&offender.peer_id)
    })
    .await;
    for i in 0..40u32 {
        let _ = offender
            .client
            .publish(Topic::Transactions, format!("bad message {i}").into_bytes())
            .await
            .unwrap();
    }
    wait_for("the offender banned", DEADLINE, || async {
        judge
            .client
            .banned()
            .await
            .unwrap()
            .contains(&offender.peer_id)
    })
    .await;
    wait_for("the offender disconnected", DEADLINE, || async {
        !peer_set(&judge.client).await.contains(&offender.peer_id)
    })
    .await;
    assert!(judge.client.metrics().snapshot().gossip_messages_rejected >= 10);
    // The offender tries again and again; the judge never lets it in.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        let _ = offender.client.dial(judge.address.clone()).await;
        assert!(
            !peer_set(&judge.client).await.contains(&offender.peer_id),
            "a banned peer reconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The judge can still talk to others.
    let mut friend_config = config(generate_keypair());
    friend_config.bootstrap = vec![judge.address.clone()];
    let friend = start(friend_config).await;
    wait_for("a fresh peer connects", DEADLINE, || async {
        peer_set(&judge.client).await.contains(&friend.peer_id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_garbage_payloads_are_dropped_and_the_node_keeps_working() {
    init_tracing();
    const SMALL_LIMIT: usize = 64 * 1024;
    let mut small_config = config(generate_keypair());
    small_config.gossip_transmit_bytes_max = SMALL_LIMIT;
    let mut small = start(small_config).await;
    let mut sender_config = config(generate_keypair());
    sender_config.bootstrap = vec![small.address.clone()];
    let sender = start(sender_config).await;
    let mut honest_config = config(generate_keypair());
    honest_config.bootstrap = vec![small.address.clone()];
    let honest = start(honest_config).await;
    // The honest node does not forward what it considers oversize.
    honest.policy.lock().unwrap().ignore_larger_than = Some(SMALL_LIMIT / 2);
    for node in [&sender, &honest] {
        wait_for("subscription", DEADLINE, || async {
            node.client
                .topic_peers(Topic::Transactions)
                .await
                .unwrap()
                .contains(&small.peer_id)
        })
        .await;
    }

    // Garbage gossip is just opaque bytes: delivered for the node to judge.
    let junk = vec![0u8, 255, 1, 254, 2, 253];
    sender
        .client
        .publish(Topic::Consensus, junk.clone())
        .await
        .unwrap();
    wait_for_gossip(&mut small, &junk, DEADLINE).await;

    // Over the sender's own limit: refused locally with a clear error.
    let huge = vec![7u8; cairn_p2p::limits::GOSSIP_TRANSMIT_BYTES_MAX + 1];
    assert!(matches!(
        sender.client.publish(Topic::Transactions, huge).await,
        Err(Error::TooLarge { .. })
    ));
    // Over the receiver's limit: dropped by the receiver's codec.
    let oversize = vec![9u8; 256 * 1024];
    sender
        .client
        .publish(Topic::Transactions, oversize)
        .await
        .unwrap();

    // Garbage on the raw TCP port.
    let tcp_port = small
        .address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .unwrap();
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        let _ = stream.write_all(&garbage).await;
        let _ = stream.shutdown().await;
    }
    // Garbage and over-limit bytes on the sync protocol.
    let garbage = vec![0xff; 64];
    assert!(matches!(
        sender.client.request_sync_raw(small.peer_id, garbage).await,
        Err(Error::Refused { .. })
    ));
    let too_long = vec![0u8; SYNC_REQUEST_BYTES_MAX + 1];
    assert!(sender
        .client
        .request_sync_raw(small.peer_id, too_long)
        .await
        .is_err());

    // The node still works: gossip from a peer arrives, never the oversize
    // payload, and sync answers.
    let payload = b"small message after the bad ones".to_vec();
    honest
        .client
        .publish(Topic::Transactions, payload.clone())
        .await
        .unwrap();
    let end = Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end.into(), small.seen.recv()).await {
            Ok(Some(Seen::Gossip { data, .. })) if data == payload => break,
            Ok(Some(Seen::Gossip { data, .. })) => {
                assert!(
                    data.len() <= SMALL_LIMIT,
                    "an oversize message was delivered"
                );
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("the node stopped receiving gossip after bad payloads"),
        }
    }
    let status = sender
        .client
        .request_sync(small.peer_id, SyncRequest::Status)
        .await
        .unwrap();
    assert!(matches!(status, SyncResponse::Status(_)));
    assert!(small.client.metrics().snapshot().inbound_requests_refused >= 1);
    assert!(peer_set(&small.client).await.contains(&honest.peer_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_sync_returns_exactly_the_requested_blocks_and_refuses_over_limit_requests() {
    init_tracing();
    let server = start(config(generate_keypair())).await;
    server.policy.lock().unwrap().blocks = 100;
    let mut client_config = config(generate_keypair());
    client_config.bootstrap = vec![server.address.clone()];
    let client = start(client_config).await;
    wait_for("connection", DEADLINE, || async {
        peer_set(&client.client).await.contains(&server.peer_id)
    })
    .await;

    let status = client
        .client
        .request_sync(server.peer_id, SyncRequest::Status)
        .await
        .unwrap();
    match status {
        SyncResponse::Status(status) => {
            assert_eq!(status.tip_height, Height(100));
            assert_eq!(status.tip_hash, sha256(&fake_block(100)));
        }
        other => panic!("unexpected {other:?}"),
    }

    let range = SyncRequest::Blocks {
        from: Height(10),
        count: 20,
    };
    match client
        .client
        .request_sync(server.peer_id, range)
        .await
        .unwrap()
    {
        SyncResponse::Blocks(blocks) => {
            let heights: Vec<u64> = blocks.iter().map(|b| b.height.0).collect();
            assert_eq!(heights, (10..30).collect::<Vec<_>>());
            for block in &blocks {
                assert_eq!(block.block, fake_block(block.height.0));
                assert_eq!(block.certificate, fake_certificate(block.height.0));
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    // Past the tip: only what exists.
    let tail = SyncRequest::Blocks {
        from: Height(95),
        count: 20,
    };
    match client
        .client
        .request_sync(server.peer_id, tail)
        .await
        .unwrap()
    {
        SyncResponse::Blocks(blocks) => assert_eq!(blocks.len(), 6),
        other => panic!("unexpected {other:?}"),
    }

    let by_hash = SyncRequest::BlockByHash(sha256(&fake_block(42)));
    match client
        .client
        .request_sync(server.peer_id, by_hash)
        .await
        .unwrap()
    {
        SyncResponse::Block(Some(block)) => assert_eq!(block.height, Height(42)),
        other => panic!("unexpected {other:?}"),
    }
    let unknown = SyncRequest::BlockByHash(sha256(b"nothing"));
    assert_eq!(
        client
            .client
            .request_sync(server.peer_id, unknown)
            .await
            .unwrap(),
        SyncResponse::Block(None)
    );

    // Transactions by hash: the largest request fits the request bound,
    // and a longer one is refused before it is sent.
    let hashes: Vec<_> = (0..SYNC_TRANSACTIONS_MAX)
        .map(|index| sha256(&index.to_le_bytes()))
        .collect();
    match client
        .client
        .request_sync(server.peer_id, SyncRequest::Transactions(hashes.clone()))
        .await
        .unwrap()
    {
        SyncResponse::Transactions(found) => {
            assert_eq!(found.len(), SYNC_TRANSACTIONS_MAX);
            assert_eq!(found[7], hashes[7].0.to_vec());
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut too_many = hashes;
    too_many.push(sha256(b"one more"));
    assert!(matches!(
        client
            .client
            .request_sync(server.peer_id, SyncRequest::Transactions(too_many))
            .await,
        Err(Error::RequestOverLimit(_))
    ));

    // Over the limit: refused before sending...
    let over = SyncRequest::Blocks {
        from: Height(1),
        count: SYNC_RANGE_BLOCKS_MAX + 1,
    };
    assert!(matches!(
        client
            .client
            .request_sync(server.peer_id, over.clone())
            .await,
        Err(Error::RequestOverLimit(_))
    ));
    // ...and by the server when sent anyway.
    let raw = postcard::to_allocvec(&over).unwrap();
    match client.client.request_sync_raw(server.peer_id, raw).await {
        Err(Error::Refused { reason, .. }) => assert!(reason.contains("limit"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }

    // Round state.
    let state = client
        .client
        .request_round_state(
            server.peer_id,
            RoundStateRequest {
                height: Height(7),
                round: Round(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(state.proposal, Some(b"proposal-7-2".to_vec()));
    assert_eq!(state.votes.len(), 2);

    // Snapshots: a list, a chunk, and an answer of the wrong kind refused.
    let offers = client
        .client
        .request_snapshot(server.peer_id, cairn_p2p::SnapshotRequest::List)
        .await
        .unwrap();
    assert!(
        matches!(&offers, cairn_p2p::SnapshotResponse::List(list) if list.len() == 1 && list[0].height == Height(10)),
        "{offers:?}"
    );
    let chunk = client
        .client
        .request_snapshot(
            server.peer_id,
            cairn_p2p::SnapshotRequest::Chunk {
                height: Height(10),
                index: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(chunk, cairn_p2p::SnapshotResponse::Chunk(Some(vec![2; 10])));
    assert!(client
        .client
        .request_snapshot(
            server.peer_id,
            cairn_p2p::SnapshotRequest::Manifest { height: Height(10) },
        )
        .await
        .is_err());

    // Retry on another peer: the first "peer" is unknown and fails.
    let stranger = generate_keypair().public().to_peer_id();
    let (answered, _) = client
        .client
        .request_sync_from_any(&[stranger, server.peer_id], SyncRequest::Status)
        .await
        .unwrap();
    assert_eq!(answered, server.peer_id);
    let metrics = client.client.metrics().snapshot();
    assert!(metrics.sync_bytes_in > 0 && metrics.sync_bytes_out > 0);
    assert!(metrics.round_state_bytes_in > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_the_same_key_keeps_its_peer_id_and_is_found_again() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("node_key.json");
    let key = load_or_generate_keypair(&key_path).unwrap();

    let hub = start(config(generate_keypair())).await;
    let mut watcher_config = config(generate_keypair());
    watcher_config.bootstrap = vec![hub.address.clone()];
    let watcher = start(watcher_config).await;

    let mut first_config = config(key);
    first_config.bootstrap = vec![hub.address.clone()];
    let first = start(first_config).await;
    let original_id = first.peer_id;
    wait_for(
        "the node known to the hub and the watcher",
        DEADLINE,
        || async {
            peer_set(&hub.client).await.contains(&original_id)
                && peer_set(&watcher.client).await.contains(&original_id)
        },
    )
    .await;

    first.client.shutdown().await.unwrap();
    let _ = first.task.await;
    assert!(matches!(
        first.client.peers().await,
        Err(Error::EventLoopStopped)
    ));
    wait_for("the node gone", DEADLINE, || async {
        !peer_set(&hub.client).await.contains(&original_id)
            && !peer_set(&watcher.client).await.contains(&original_id)
    })
    .await;

    let reloaded = load_or_generate_keypair(&key_path).unwrap();
    let mut second_config = config(reloaded);
    second_config.bootstrap = vec![hub.address.clone()];
    let second = start(second_config).await;
    assert_eq!(second.peer_id, original_id);
    wait_for("the restarted node found again", DEADLINE, || async {
        peer_set(&hub.client).await.contains(&original_id)
            && peer_set(&watcher.client).await.contains(&original_id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_read_its_events_does_not_stall_the_swarm() {
    init_tracing();
    // The lazy node never reads its event stream after start-up.
    let (lazy, mut lazy_events, _task) = cairn_p2p::spawn(config(generate_keypair())).unwrap();
    let address = loop {
        if let Some(cairn_p2p::Event::ListenAddress { address }) = lazy_events.recv().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(lazy.local_peer_id()));
        }
    };
    let mut busy_config = config(generate_keypair());
    busy_config.bootstrap = vec![address];
    let busy = start(busy_config).await;
    wait_for("subscription", DEADLINE, || async {
        busy.client
            .topic_peers(Topic::Transactions)
            .await
            .unwrap()
            .contains(&lazy.local_peer_id())
    })
    .await;
    for i in 0..3000u32 {
        busy.client
            .publish(Topic::Transactions, format!("message {i}").into_bytes())
            .await
            .unwrap();
    }
    // Commands are still served while events pile up, and requests get answers
    // (a refusal or a timeout of the node's answer), never a hang of the loop.
    wait_for(
        "the lazy node to take in the messages",
        DEADLINE,
        || async { lazy.metrics().snapshot().gossip_messages_received >= 2000 },
    )
    .await;
    assert!(lazy.peers().await.unwrap().contains(&busy.peer_id));
    assert_eq!(
        busy.client.peers().await.unwrap(),
        vec![lazy.local_peer_id()]
    );
    drop(lazy_events);
}
