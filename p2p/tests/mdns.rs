//! mDNS discovery, only ever inside a network namespace this test creates.
//!
//! The test re-executes its own binary under `unshare -n` with a veth pair
//! (multicast on) inside the new namespace; the child runs two nodes with
//! mDNS on and no bootstrap peer, and they must find each other. mDNS never
//! touches the machine's real interfaces. Needs root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use cairn_p2p::generate_keypair;
use common::*;

const CHILD_ENV: &str = "CAIRN_P2P_MDNS_NETNS_CHILD";
const SUCCESS_MARK: &str = "CAIRN-P2P-MDNS-DISCOVERY-OK";
const TEST_NAME: &str = "two_nodes_find_each_other_through_mdns_in_a_network_namespace";

#[test]
fn two_nodes_find_each_other_through_mdns_in_a_network_namespace() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let has_ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_ip,
        "this test needs the `ip` command to set up its network namespace: \
         install iproute2 (apt-get install -y iproute2)"
    );
    let exe = std::env::current_exe().unwrap();
    let setup = "set -e; ip link set lo up; \
        ip link add cairnveth0 type veth peer name cairnveth1; \
        ip addr add 10.213.0.1/24 dev cairnveth0; ip addr add 10.213.0.2/24 dev cairnveth1; \
        ip link set cairnveth0 multicast on; ip link set cairnveth1 multicast on; \
        ip link set cairnveth0 up; ip link set cairnveth1 up; \
        exec \"$0\" \"$@\"";
    let output = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", setup])
        .arg(&exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("cannot run unshare; this test needs util-linux and root");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(SUCCESS_MARK),
        "mDNS child failed ({}); it needs root to create a network namespace\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

fn child() {
    // Refuse to multicast anywhere but in a namespace holding our veth pair.
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        links.contains("cairnveth0"),
        "not inside the test's network namespace"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        init_tracing();
        let mut a_config = config(generate_keypair());
        a_config.mdns = true;
        a_config.listen_addresses = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
        let mut b_config = config(generate_keypair());
        b_config.mdns = true;
        b_config.listen_addresses = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
        let a = start(a_config).await;
        let b = start(b_config).await;
        wait_for("mDNS discovery", DEADLINE, || async {
            peer_set(&a.client).await.contains(&b.peer_id)
                && peer_set(&b.client).await.contains(&a.peer_id)
        })
        .await;
    });
    println!("{SUCCESS_MARK}");
}
