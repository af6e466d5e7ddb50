//! Test hosts in Linux network namespaces: a hub namespace holding a
//! bridge, and one namespace per host joined to it by a veth pair with a
//! private address (10.87.<subnet>.<host + 1>/24). Nothing is added to the
//! machine's own namespace, so no traffic leaves the test. Links can be
//! taken down (`ip link set ... down`) and made to lose packets.
//!
//! WAN links: kernels without `sch_netem` (this project's CI kernel has no
//! netem, gact or police) cannot delay packets, so [`Net::relay`] puts a
//! delaying TCP relay for a host on an address of its own in the hub
//! (10.87.<subnet>.<host + 101>): a node that advertises it is reached
//! through it, and every byte crossing it is held back by a delay with
//! jitter (in order, as TCP delivers). Packet loss is real:
//! [`Net::set_loss_all`] drops a share of the packets each host sends.
//!
//! Names carry the test process id (`cnh<pid><letter>`), so namespaces a
//! crashed earlier run left behind (whose process is gone) are removed by
//! the next run; a [`Net`] removes its own when dropped, also on panic.
//! The test process reaches a host's RPC from a thread that entered the
//! hub namespace ([`Net::in_hub`]); `cairnd` runs inside its host's
//! namespace ([`Net::spawn_in`]). Needs root and iproute2 (`ip`, `tc`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Child, Command},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// The prefix of every namespace and interface this harness makes.
pub const NAME_PREFIX: &str = "cnh";
/// The port `cairnd` listens on for p2p inside a host (each host has its
/// own port space).
pub const P2P_PORT: u16 = 26656;
/// The port of the RPC inside a host.
pub const RPC_PORT: u16 = 26657;
/// Most hosts on one hub (addresses .1 to .250 of the subnet).
pub const HOSTS_MAX: usize = 250;

static NETS_MADE: AtomicU32 = AtomicU32::new(0);

/// Whether the test runs as root; if not, prints why the test is skipped.
/// CI runs as root, so CI never skips.
pub fn root_or_skip(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        // Straight to stderr: libtest's capture (of print macros) would
        // hide the message of a test that returns.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED {test}: network-namespace hosts need root (ip netns, tc).\n\
             !!! Run the test suite as root (CI does) to run this test.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    root
}

/// Runs `ip`/`tc` with `args`; panics with its stderr when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} (install iproute2): {error}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes the namespaces of earlier runs whose process is gone.
fn remove_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

/// One host: its namespace, address and link.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name.
    pub namespace: String,
    /// Its address on the hub's bridge.
    pub ip: Ipv4Addr,
    /// The host's end of its veth pair.
    pub link: String,
}

impl Host {
    /// `http://<ip>:<RPC_PORT>`
    pub fn rpc_url(&self) -> String {
        format!("http://{}:{RPC_PORT}", self.ip)
    }

    /// `/ip4/<ip>/tcp/<P2P_PORT>`
    pub fn p2p_address(&self) -> String {
        format!("/ip4/{}/tcp/{P2P_PORT}", self.ip)
    }
}

/// How a relay delays what crosses it, in each direction.
#[derive(Clone, Copy, Debug)]
pub struct LinkShape {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform jitter: each chunk waits `delay` ± up to this.
    pub jitter: Duration,
}

/// A hub and its hosts; removed when dropped.
pub struct Net {
    /// `cnh<pid><letter>`: prefix of every name of this net.
    pub tag: String,
    /// The hub namespace.
    pub hub: String,
    /// The hosts, in order.
    pub hosts: Vec<Host>,
    /// The subnet's third byte.
    subnet: u8,
    /// Set when the net is dropped: the relays stop accepting.
    relays_stop: Arc<AtomicBool>,
    /// The shape of every relay, changeable while they run.
    shape: Arc<std::sync::Mutex<LinkShape>>,
}

impl Net {
    /// A hub and `count` hosts on subnet 10.87.<n>.0/24, `n` unique in this
    /// process.
    pub fn new(count: usize) -> Net {
        assert!(count <= HOSTS_MAX);
        let made = NETS_MADE.fetch_add(1, Ordering::Relaxed);
        if made == 0 {
            remove_stale();
        }
        assert!(
            made < 26,
            "too many nets in one test process (names use one letter)"
        );
        let letter = char::from(b'a' + u8::try_from(made % 26).unwrap());
        let tag = format!("{NAME_PREFIX}{}{letter}", std::process::id());
        let subnet = 1 + made % 250;
        let hub = format!("{tag}-hub");
        let bridge = format!("{tag}br");
        let mut net = Net {
            tag: tag.clone(),
            hub: hub.clone(),
            hosts: Vec::new(),
            subnet: u8::try_from(subnet).unwrap(),
            relays_stop: Arc::new(AtomicBool::new(false)),
            shape: Arc::new(std::sync::Mutex::new(LinkShape {
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
            })),
        };
        run("ip", &["netns", "add", &hub]);
        run("ip", &["-n", &hub, "link", "set", "lo", "up"]);
        run(
            "ip",
            &["-n", &hub, "link", "add", &bridge, "type", "bridge"],
        );
        run("ip", &["-n", &hub, "link", "set", &bridge, "up"]);
        let hub_ip = format!("10.87.{subnet}.254/24");
        run("ip", &["-n", &hub, "addr", "add", &hub_ip, "dev", &bridge]);
        for index in 0..count {
            let namespace = format!("{tag}-{index}");
            let hub_end = format!("{tag}b{index}");
            let link = format!("{tag}h{index}");
            assert!(link.len() <= 15 && hub_end.len() <= 15, "{link}");
            run("ip", &["netns", "add", &namespace]);
            net.hosts.push(Host {
                namespace: namespace.clone(),
                ip: Ipv4Addr::new(
                    10,
                    87,
                    u8::try_from(subnet).unwrap(),
                    u8::try_from(index + 1).unwrap(),
                ),
                link: link.clone(),
            });
            run("ip", &["-n", &namespace, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &hub_end, "type", "veth", "peer", "name", &link,
                    "netns", &namespace,
                ],
            );
            run(
                "ip",
                &["-n", &hub, "link", "set", &hub_end, "master", &bridge],
            );
            run("ip", &["-n", &hub, "link", "set", &hub_end, "up"]);
            let address = format!("{}/24", net.hosts[index].ip);
            run(
                "ip",
                &["-n", &namespace, "addr", "add", &address, "dev", &link],
            );
            run("ip", &["-n", &namespace, "link", "set", &link, "up"]);
        }
        net
    }

    /// Runs `work` on a thread inside namespace `namespace` and returns
    /// its result.
    fn in_namespace<T: Send>(namespace: &str, work: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/run/netns/{namespace}")).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // Moves this (scoped, short-lived) thread only.
                    move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&file),
                        Some(LinkNameSpaceType::Network),
                    )
                    .unwrap_or_else(|error| panic!("setns {namespace}: {error}"));
                    work()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs `work` on a thread inside the hub namespace (which reaches
    /// every host's address) and returns its result.
    pub fn in_hub<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        Self::in_namespace(&self.hub, work)
    }

    /// Spawns `command` inside the hub namespace.
    pub fn spawn_in_hub(&self, command: &mut Command) -> Child {
        Self::in_namespace(&self.hub, || command.spawn().unwrap())
    }

    /// Spawns `command` inside host `index`'s namespace (a child process
    /// starts in the namespace of the thread that forks it).
    pub fn spawn_in(&self, index: usize, command: &mut Command) -> Child {
        Self::in_namespace(&self.hosts[index].namespace, || command.spawn().unwrap())
    }

    /// Takes host `index`'s link down (`up` false) or up again.
    pub fn set_link(&self, index: usize, up: bool) {
        let host = &self.hosts[index];
        let state = if up { "up" } else { "down" };
        run(
            "ip",
            &["-n", &host.namespace, "link", "set", &host.link, state],
        );
    }

    /// Drops `percent`% of the packets every host sends, at random (0
    /// removes it), on its own link: each packet between two hosts passes
    /// one such link. Kernels without `sch_netem` (and without the gact
    /// action) still have what this needs: an htb root whose second class
    /// ends in a `pfifo limit 0` (a black hole), and a classic-BPF
    /// classifier that sends a packet there when the kernel's random
    /// number (`ld rand`) falls below the share.
    pub fn set_loss_all(&self, percent: u32) {
        assert!(percent <= 100);
        let threshold = (u64::from(percent) << 32) / 100;
        let threshold = u32::try_from(threshold.min(u64::from(u32::MAX))).unwrap();
        // ld rand; jge threshold ? ret 0 (pass) : ret -1 (to 1:2)
        let program = format!("4,32 0 0 4294963256,53 0 1 {threshold},6 0 0 0,6 0 0 4294967295");
        for host in &self.hosts {
            let (namespace, link) = (host.namespace.as_str(), host.link.as_str());
            let _ = Command::new("tc")
                .args(["-n", namespace, "qdisc", "del", "dev", link, "root"])
                .output();
            if percent == 0 {
                continue;
            }
            let tc = |args: &[&str]| {
                let mut all = vec!["-n", namespace];
                all.extend_from_slice(args);
                run("tc", &all);
            };
            tc(&[
                "qdisc", "add", "dev", link, "root", "handle", "1:", "htb", "default", "1",
            ]);
            for class in ["1:1", "1:2"] {
                tc(&[
                    "class", "add", "dev", link, "parent", "1:", "classid", class, "htb", "rate",
                    "10gbit",
                ]);
            }
            tc(&[
                "qdisc", "add", "dev", link, "parent", "1:2", "handle", "20:", "pfifo", "limit",
                "0",
            ]);
            tc(&[
                "filter", "add", "dev", link, "parent", "1:", "bpf", "bytecode", &program,
                "flowid", "1:2",
            ]);
        }
    }

    /// Packets dropped by [`Net::set_loss_all`] on host `index`'s link.
    pub fn lost_packets(&self, index: usize) -> u64 {
        let host = &self.hosts[index];
        let output = Command::new("tc")
            .args([
                "-n",
                &host.namespace,
                "-s",
                "qdisc",
                "show",
                "dev",
                &host.link,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        // The black hole's own line: `qdisc pfifo 20: ...`, then its
        // `Sent ... (dropped N, ...)`.
        text.split("qdisc ")
            .find(|part| part.starts_with("pfifo 20:"))
            .and_then(|part| part.split("dropped ").nth(1))
            .and_then(|rest| rest.split(',').next())
            .and_then(|number| number.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Net {
    /// Sets how every relay of this net delays what crosses it.
    pub fn shape_relays(&self, shape: LinkShape) {
        *self.shape.lock().unwrap() = shape;
    }

    /// Starts a relay for host `index`'s port `port` on a hub address of
    /// its own; returns `/ip4/<relay address>/tcp/<port>`, the address to
    /// advertise for the host.
    pub fn relay(&self, index: usize, port: u16) -> String {
        let relay_ip = Ipv4Addr::new(10, 87, self.subnet, u8::try_from(index + 101).unwrap());
        let bridge = format!("{}br", self.tag);
        run(
            "ip",
            &[
                "-n",
                &self.hub,
                "addr",
                "add",
                &format!("{relay_ip}/24"),
                "dev",
                &bridge,
            ],
        );
        let target = SocketAddr::from((self.hosts[index].ip, port));
        let listener = self.in_hub(|| TcpListener::bind((relay_ip, port)).unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = self.relays_stop.clone();
        let shape = self.shape.clone();
        let hub = self.hub.clone();
        std::thread::spawn(move || {
            let hub_file = std::fs::File::open(format!("/run/netns/{hub}")).unwrap();
            // Connections to the host are made from the hub.
            if move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&hub_file),
                Some(LinkNameSpaceType::Network),
            )
            .is_err()
            {
                return;
            }
            let mut seed = u64::from(std::process::id()) ^ u64::from(index as u32) << 32 | 1;
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        let Ok(outbound) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(2))
                        else {
                            continue;
                        };
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let _ = inbound.set_nonblocking(false);
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        pump(&inbound, &outbound, shape.clone(), seed);
                        pump(&outbound, &inbound, shape.clone(), seed ^ 0x9e37_79b9);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        format!("/ip4/{relay_ip}/tcp/{port}")
    }
}

/// Copies `from` to `to` on two threads: a reader stamping each chunk
/// with its release time (in order), a writer sending it then.
fn pump(from: &TcpStream, to: &TcpStream, shape: Arc<std::sync::Mutex<LinkShape>>, seed: u64) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    // Chunks in flight per direction; the reader waits when it is full.
    const CHUNKS_IN_FLIGHT_MAX: usize = 1024;
    let (sender, receiver) = mpsc::sync_channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT_MAX);
    std::thread::spawn(move || {
        let mut random = seed | 1;
        let mut next = move || {
            // xorshift64: a uniform sample in 0..1.
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            (random >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut last = Instant::now();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let shape = *shape.lock().unwrap();
            let jitter = shape.jitter.as_secs_f64() * (2.0 * next() - 1.0);
            let wait = (shape.delay.as_secs_f64() + jitter).max(0.0);
            let release = (Instant::now() + Duration::from_secs_f64(wait)).max(last);
            last = release;
            if sender.send((release, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Read);
    });
    std::thread::spawn(move || {
        for (release, chunk) in receiver {
            let now = Instant::now();
            if release > now {
                std::thread::sleep(release - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for Net {
    fn drop(&mut self) {
        self.relays_stop.store(true, Ordering::Relaxed);
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "delete", &host.namespace])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.hub])
            .output();
    }
}
