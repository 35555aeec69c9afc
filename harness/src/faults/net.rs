//! Network faults between clients and servers: `partition`, `net-delay` and
//! `net-reset`, through one loopback proxy per client per server (cutting one
//! client off must leave the others connected). They act only on the proxies,
//! never on the servers or the clients.

use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::Endpoint;

use super::{Applied, World, proxy, who};

/// Each client's own proxies, one per server (`[client][server]`), for scenarios
/// with network faults: cutting one client off must not cut the others.
pub struct Net {
    proxies: Vec<Vec<proxy::Proxy>>,
    /// The servers as given (credentials included), to hand each client the same
    /// endpoint at its proxy's address.
    upstream: Vec<Endpoint>,
}

impl Net {
    /// Start `clients` × servers proxies in front of `endpoints` (on loopback or
    /// on this run's network nodes).
    pub async fn start(clients: u32, endpoints: &[String]) -> Result<Net, String> {
        let given = endpoints
            .iter()
            .map(|e| Endpoint::from_env(e).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let upstream = given
            .iter()
            .map(|e| {
                use std::net::ToSocketAddrs;
                e.addr()
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| {
                        a.find(|a| a.ip().is_loopback() || lockbench_backends::servers::nodes::is_node_addr(a.ip()))
                    })
                    .ok_or_else(|| {
                        format!(
                            "network faults need servers on loopback or on this run's network nodes, and `{e}` is not"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut proxies = Vec::with_capacity(clients as usize);
        for _ in 0..clients {
            let mut mine = Vec::with_capacity(upstream.len());
            for u in &upstream {
                mine.push(proxy::Proxy::start(*u).await.map_err(|e| format!("starting a proxy to {u}: {e}"))?);
            }
            proxies.push(mine);
        }
        Ok(Net { proxies, upstream: given })
    }

    /// Where client `c` connects instead of the servers (same credentials).
    pub fn endpoints(&self, c: u32) -> Vec<String> {
        self.proxies[c as usize]
            .iter()
            .zip(&self.upstream)
            .map(|(p, e)| e.at(&p.addr().to_string()).map_or_else(|_| p.addr().to_string(), |e| e.to_env()))
            .collect()
    }

    /// The proxies between `clients` and `servers` (None: all servers); the
    /// description names what was hit, or what does not exist.
    fn select(&self, clients: &[usize], servers: &Option<Vec<usize>>) -> (Vec<&proxy::Proxy>, String) {
        let n = self.proxies.first().map_or(0, |p| p.len());
        let servers: Vec<usize> = servers.clone().unwrap_or_else(|| (0..n).collect());
        let missing: Vec<String> = servers.iter().filter(|&&i| i >= n).map(|i| i.to_string()).collect();
        let hit = clients
            .iter()
            .flat_map(|&c| servers.iter().filter(|&&i| i < n).map(move |&i| &self.proxies[c][i]))
            .collect();
        let mut d = format!("{} ↔ {}", who(clients), which_servers(&servers, n));
        if !missing.is_empty() {
            d += &format!(" (no server {}: {n} here)", missing.join(", "));
        }
        (hit, d)
    }
}

/// Switch a network fault on for the proxies between `who` and `on`, and off again
/// after `window` (if above zero).
pub(super) fn on_net(
    w: &World,
    name: &str,
    who: &[usize],
    on: &Option<Vec<usize>>,
    set: impl Fn(&proxy::Proxy, bool) + Send + 'static,
    window: Duration,
) -> Applied {
    let t0 = mono_ns();
    let Some(net) = &w.net else {
        let desc = match &w.net_error {
            Some(e) => format!("{name}: not applied: {e}"),
            None => format!("{name}: no network to act on (embedded backend)"),
        };
        return Applied::missed(desc, t0);
    };
    if who.is_empty() {
        return Applied::missed(format!("{name}: no holder to hit"), t0);
    }
    let (hit, desc) = net.select(who, on);
    for p in &hit {
        set(p, true);
    }
    if !window.is_zero() {
        let (net, who, on) = (net.clone(), who.to_vec(), on.clone());
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            for p in net.select(&who, &on).0 {
                set(p, false);
            }
        });
    }
    Applied { desc: format!("{name}: {desc}"), t0, window, hit: !hit.is_empty() }
}

fn which_servers(servers: &[usize], n: usize) -> String {
    if servers.len() == n && servers.iter().enumerate().all(|(i, s)| i == *s) {
        "all servers".into()
    } else {
        format!("server {}", servers.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
    }
}
