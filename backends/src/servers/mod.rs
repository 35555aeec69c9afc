//! How a backend's servers come to exist.
//!
//! A provider hands out running servers and, where it can, fault controls on them.
//! `local` starts the programs that `scripts/setup` installed as child processes on
//! free loopback ports, each with its own temp directory, and always stops them;
//! `external` takes endpoints the user gives (a real cluster) and offers no server
//! faults. This module must not know about scenarios or histories.

pub mod endpoint;
pub mod local;
pub mod nodes;
pub mod postgres;
pub mod tempdirs;

pub use endpoint::{Endpoint, redact};

use std::fmt;

use crate::{BackendError, Result};

/// The kinds of server program a backend may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    Redis,
    /// Apache Cassandra 5.0 (jars from Maven Central), Paxos v2 for LWTs. The CQL
    /// port also fits ScyllaDB as an external server.
    Cassandra,
    /// The same Cassandra with `paxos_variant: v1` (4 round trips per LWT).
    CassandraPaxosV1,
    /// PostgreSQL (Debian's `postgresql`, 15), fsync on.
    Postgres,
    /// A PostgreSQL server behind PgBouncer in transaction pooling mode: the
    /// endpoint is PgBouncer's; server faults act on the PostgreSQL behind it.
    Pgbouncer,
    /// An etcd cluster (Debian's `etcd-server`, 3.4): the members find each other
    /// on their peer ports; a member is ready once the cluster has a leader.
    Etcd,
    /// A ZooKeeper ensemble (Debian's `zookeeper`, 3.8, on Java): the members find
    /// each other on their quorum and election ports; a member is ready once it
    /// serves as leader or follower.
    Zookeeper,
    /// Redis with Sentinel (Debian's `redis-server`, 7.0): a primary, replicas of
    /// it and one Sentinel beside each; its endpoints are the Sentinels', which
    /// name the primary. Faults act on the Redis servers, "leader" is the primary.
    RedisSentinel,
    /// A DynamoDB API on loopback: dynalite (npm, Node.js; in memory unless
    /// `persist`). AWS's own DynamoDB Local is not used: its licence is the
    /// vendor's terms, not an open-source one.
    Dynamodb,
}

/// The name the local provider's Sentinels monitor their primary under, and the
/// name a Sentinel-aware client asks them for.
pub const SENTINEL_MASTER: &str = "lockbench";

impl ServerKind {
    /// Every kind, for `--endpoints` and `LOCKBENCH_<KIND>`.
    pub const ALL: [ServerKind; 9] = [
        ServerKind::Redis,
        ServerKind::Cassandra,
        ServerKind::CassandraPaxosV1,
        ServerKind::Postgres,
        ServerKind::Pgbouncer,
        ServerKind::Etcd,
        ServerKind::Zookeeper,
        ServerKind::RedisSentinel,
        ServerKind::Dynamodb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis",
            ServerKind::Cassandra => "cassandra",
            ServerKind::CassandraPaxosV1 => "cassandra_v1",
            ServerKind::Postgres => "postgres",
            ServerKind::Pgbouncer => "pgbouncer",
            ServerKind::Etcd => "etcd",
            ServerKind::Zookeeper => "zookeeper",
            ServerKind::RedisSentinel => "redis_sentinel",
            ServerKind::Dynamodb => "dynamodb",
        }
    }

    /// A consensus cluster: its members elect a leader (faults may name "leader"
    /// and "follower"), are started together (none answers alone), and can be put
    /// on network nodes for peer partitions.
    pub fn elects_leader(self) -> bool {
        matches!(self, ServerKind::Etcd | ServerKind::Zookeeper)
    }

    /// Can the local provider put its servers on network nodes (for peer
    /// partitions, or `--nodes`)? The consensus clusters, Redis (alone, Redlock's
    /// five, with Sentinel) and Cassandra.
    pub fn on_nodes(self) -> bool {
        self.elects_leader() || matches!(self, ServerKind::Redis | ServerKind::RedisSentinel) || self.is_cassandra()
    }

    /// Do `n` servers of this kind talk to each other, so that a peer partition
    /// can cut them apart? Consensus clusters, Redis with Sentinel (replication
    /// and the Sentinels' gossip) and Cassandra rings; not Redlock's independent
    /// servers, not one server.
    pub fn peers(self, n: usize) -> bool {
        n > 1 && (self.elects_leader() || self == ServerKind::RedisSentinel || self.is_cassandra())
    }

    /// The kinds that can go on network nodes, for messages ("etcd, zookeeper, ...").
    pub fn on_nodes_names() -> String {
        ServerKind::ALL.iter().filter(|k| k.on_nodes()).map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Apache Cassandra (either Paxos variant).
    pub fn is_cassandra(self) -> bool {
        matches!(self, ServerKind::Cassandra | ServerKind::CassandraPaxosV1)
    }

    /// Spoken to with PostgreSQL's protocol (PostgreSQL itself, or PgBouncer).
    pub fn is_postgres(self) -> bool {
        matches!(self, ServerKind::Postgres | ServerKind::Pgbouncer)
    }

    /// The variable a password for this kind's servers may come from
    /// (`LOCKBENCH_REDIS_PASSWORD`, ...), keeping it out of shell history.
    pub fn password_var(self) -> String {
        format!("LOCKBENCH_{}_PASSWORD", self.name().to_uppercase())
    }

    /// The program the local provider runs, and how to install it.
    pub fn program(self) -> (&'static str, &'static str) {
        match self {
            ServerKind::Redis | ServerKind::RedisSentinel => {
                ("redis-server", "scripts/setup (Debian package redis-server)")
            }
            ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => {
                ("java", "scripts/setup (Cassandra jars from Maven Central into .servers/cassandra)")
            }
            ServerKind::Postgres => ("postgres", "scripts/setup (Debian package postgresql)"),
            ServerKind::Pgbouncer => ("pgbouncer", "scripts/setup (Debian packages postgresql and pgbouncer)"),
            ServerKind::Etcd => ("etcd", "scripts/setup (Debian package etcd-server)"),
            ServerKind::Zookeeper => ("java", "scripts/setup (Debian package zookeeper)"),
            ServerKind::Dynamodb => ("node", "scripts/setup (npm package dynalite into .servers/dynalite)"),
        }
    }

    /// Is the program installed here?
    pub fn installed(self) -> bool {
        match self {
            ServerKind::Redis | ServerKind::RedisSentinel | ServerKind::Etcd => {
                local::which(self.program().0).is_some()
            }
            ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => {
                local::which("java").is_some() && local::cassandra_lib().is_ok()
            }
            ServerKind::Postgres => local::postgres_bin("postgres").is_some(),
            ServerKind::Pgbouncer => local::postgres_bin("postgres").is_some() && local::which("pgbouncer").is_some(),
            ServerKind::Zookeeper => local::which("java").is_some() && local::zookeeper_classpath().is_ok(),
            ServerKind::Dynamodb => local::which("node").is_some() && local::dynalite().is_ok(),
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault on one server of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFault {
    /// SIGKILL; the server stays down until restarted.
    Kill,
    /// SIGSTOP: the process is frozen, connections stay open.
    Pause,
    /// SIGCONT after a pause.
    Resume,
    /// Kill (if running) and start again on the same port and data directory.
    Restart,
}

/// Running servers for one backend, from some provider.
pub trait Servers: Send + Sync {
    /// `host:port` of each server.
    fn endpoints(&self) -> Vec<String>;
    /// Whether faults can be applied (the local provider: yes; external: no).
    fn can_fault(&self) -> bool;
    /// Apply a fault to server `i`.
    fn fault(&self, i: usize, f: ServerFault) -> Result<()>;
    /// Restart server `i` with its clock skewed by libfaketime (`Some(FAKETIME)`)
    /// or true (`None`).
    fn set_clock(&self, i: usize, faketime: Option<&str>) -> Result<()> {
        let _ = faketime;
        Err(BackendError::Config(format!("server {i}: this provider cannot skew server clocks")))
    }
    /// The server program's version, for the report.
    fn version(&self) -> Option<String>;
    /// Cut members apart: node `i` drops every packet from the nodes in `g[i]`.
    /// Only servers on network nodes can.
    fn partition(&self, g: &nodes::Grudge) -> Result<()> {
        let _ = g;
        Err(nodes::not_on_nodes())
    }
    /// Undo every cut.
    fn heal(&self) -> Result<()> {
        Ok(())
    }
    /// Which server leads now, for clusters that elect one (etcd, ZooKeeper); None for the
    /// others, or when no member answers with a leader. Blocks for a moment.
    fn leader(&self) -> Option<usize> {
        None
    }
    /// The servers' resident memory, summed over every member and the processes
    /// it forked (bytes), where the provider can see their processes.
    fn rss_bytes(&self) -> Option<u64> {
        None
    }
}

/// Endpoints the user gave: a real cluster. No faults.
#[derive(Debug, Clone)]
pub struct External {
    pub kind: ServerKind,
    pub endpoints: Vec<Endpoint>,
}

impl External {
    /// Parse `ENDPOINT[,ENDPOINT...]` (forms in [`endpoint`]), refusing anything else
    /// with the text named (its password hidden).
    pub fn parse(kind: ServerKind, s: &str) -> Result<External> {
        let endpoints = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| Endpoint::parse(kind, e))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(BackendError::Config(format!("no {kind} endpoints given")));
        }
        Ok(External { kind, endpoints })
    }

    /// The first `n` endpoints.
    pub fn first(&self, n: usize) -> External {
        External { kind: self.kind, endpoints: self.endpoints[..n.min(self.endpoints.len())].to_vec() }
    }
}

impl Servers for External {
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(Endpoint::to_env).collect()
    }
    fn can_fault(&self) -> bool {
        false
    }
    fn fault(&self, _: usize, f: ServerFault) -> Result<()> {
        Err(BackendError::Config(format!("{f:?}: external servers take no server faults")))
    }
    fn version(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_endpoints_are_checked() {
        let e = External::parse(ServerKind::Redis, "127.0.0.1:6379, 127.0.0.2:6380").unwrap();
        assert_eq!(e.endpoints(), vec!["127.0.0.1:6379", "127.0.0.2:6380"]);
        let err = External::parse(ServerKind::Redis, "127.0.0.1:6379,localhost").unwrap_err().to_string();
        assert!(err.contains("`localhost`: no port"), "{err}");
        assert!(External::parse(ServerKind::Redis, "h:0").is_err());
        assert!(External::parse(ServerKind::Redis, "").is_err());
    }
}
