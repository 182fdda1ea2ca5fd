//! A real Redis Cluster on loopback: `redis-server --cluster-enabled yes` nodes joined with
//! `redis-cli --cluster create`, stopped by PID when dropped.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_flavour;
use crate::redis_server::{command_at, RedisServer};

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

/// A port whose cluster bus port (+10000) is free as well.
fn cluster_port() -> u16 {
    for _ in 0..100 {
        let port = crate::paths::free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each; a node is failed after 1 s without
    /// answers (`cluster-node-timeout`), so failover tests take seconds.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_at(
                    "127.0.0.1",
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let mut command = Command::new(redis_flavour::cli());
        command.arg("--cluster").arg("create");
        for n in &nodes {
            command.arg(format!("127.0.0.1:{}", n.port));
        }
        command
            .args(["--cluster-replicas", &replicas.to_string()])
            .arg("--cluster-yes");
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", redis_flavour::cli()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every running node says `cluster_state:ok` and knows every node.
    pub fn wait_until_ok(&self) {
        let start = Instant::now();
        // A killed node stays known (as failed).
        let total = self.nodes.len();
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]);
                let known = format!("cluster_known_nodes:{total}");
                let replication = node.command(&["INFO", "replication"]);
                let synced = replication.contains("role:master")
                    || replication.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && info.contains(&known) && synced {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "cluster node {} never became ok: {info}",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The seed list for a save_path: `127.0.0.1:p1,127.0.0.1:p2,…` (masters first).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn save_path(&self, options: &str) -> String {
        let sep = if options.is_empty() { "" } else { "?" };
        format!("redis+cluster://{}{sep}{options}", self.seeds())
    }

    /// The node (index into `nodes`) that serves `key` as a master now.
    pub fn master_of(&self, key: &str) -> usize {
        let asked = self
            .nodes
            .iter()
            .position(|n| n.pid().is_some() && node_is_master(n))
            .unwrap_or_else(|| panic!("no running master"));
        let reply = self.nodes[asked].command(&["GET", key]);
        let port = match reply.strip_prefix("-MOVED ") {
            Some(rest) => rest
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("MOVED reply: {reply}")),
            None => return asked,
        };
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("MOVED to an unknown node: {reply}"))
    }

    pub fn slot_of(&self, key: &str) -> u16 {
        let reply = self.any_node().command(&["CLUSTER", "KEYSLOT", key]);
        reply
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key}: {reply}"))
    }

    fn any_node(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.pid().is_some())
            .unwrap_or_else(|| panic!("every cluster node is stopped"))
    }

    /// Reads `key` from whichever master serves it.
    pub fn get(&self, key: &str) -> String {
        self.nodes[self.master_of(key)].command(&["GET", key])
    }

    /// The node id of node `i`.
    pub fn node_id(&self, i: usize) -> String {
        self.nodes[i].command(&["CLUSTER", "MYID"])
    }

    /// `redis-cli --cluster` with `args` (e.g. `reshard` options), against the first
    /// running node; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self.any_node();
        let out = Command::new(redis_flavour::cli())
            .arg("--cluster")
            .arg(args[0])
            .arg(format!("127.0.0.1:{}", node.port))
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", redis_flavour::cli()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "redis-cli --cluster {args:?}: {text}");
        text
    }
}

impl RedisCluster {
    /// Moves `slot` from node `from` to node `to` with its keys, step by step as
    /// `redis-cli --cluster reshard` does, pausing `pause` between the steps so requests
    /// meet the slot half-migrated (`ASK`, `TRYAGAIN`).
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize, pause: Duration) {
        let (src, dst) = (&self.nodes[from], &self.nodes[to]);
        let (src_id, dst_id) = (self.node_id(from), self.node_id(to));
        let s = slot.to_string();
        assert_eq!(
            dst.command(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id]),
            "+OK"
        );
        assert_eq!(
            src.command(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id]),
            "+OK"
        );
        std::thread::sleep(pause);
        loop {
            let keys = cli_lines(src.port, &["CLUSTER", "GETKEYSINSLOT", &s, "1"]);
            let Some(key) = keys.first() else { break };
            let port = dst.port.to_string();
            let reply = src.command(&["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
            assert!(
                reply == "+OK" || reply == "+NOKEY",
                "MIGRATE {key}: {reply}"
            );
            std::thread::sleep(pause);
        }
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            node.command(&["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]);
        }
    }
}

/// Runs one command with `redis-cli` and returns its output lines (for array replies).
fn cli_lines(port: u16, args: &[&str]) -> Vec<String> {
    let out = Command::new(redis_flavour::cli())
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", redis_flavour::cli()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn node_is_master(node: &RedisServer) -> bool {
    command_at(&node.bind, node.port, &["INFO", "replication"]).contains("role:master")
}
