//! A fault-injecting TCP proxy on loopback, between the clients and one server.
//!
//! Each direction of each connection is a queue: the reader stamps every chunk
//! with the time it may be delivered (now + delay ± jitter, never before the chunk
//! ahead of it, so bytes keep their order) and the writer delivers it then. A
//! blackhole holds the queue: bytes are kept, not dropped, and arrive when it
//! lifts, as a healed network delivers what TCP retransmitted. A reset closes every
//! open connection at once (both peers see it drop). The proxy must only listen on loopback and only
//! forward to the one upstream it was given.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

#[derive(Default)]
struct State {
    delay_ns: AtomicU64,
    jitter_ns: AtomicU64,
    hold_up: AtomicBool,
    hold_down: AtomicBool,
    /// Bumped by `reset`: connections opened under an older generation close.
    generation: AtomicU64,
    changed: Notify,
}

/// One proxy: listens on 127.0.0.1, forwards to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Close what is open, too.
        self.reset();
    }
}

impl Proxy {
    /// Start a proxy to `upstream` (a loopback address, or a node this run made).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        if !upstream.ip().is_loopback() && !lockbench_backends::servers::nodes::is_node_addr(upstream.ip()) {
            return Err(std::io::Error::other(format!(
                "the proxy only forwards to loopback or this run's network nodes, not {upstream}"
            )));
        }
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let st = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    // Upstream refused: close the client's side too, as the server would.
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        connection(client, server, st).await;
                    }
                });
            }
        });
        Ok(Proxy { addr, state, accept })
    }

    /// Where clients connect instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Delay every chunk by `delay`, plus up to `jitter` more (both directions).
    pub fn set_delay(&self, delay: Duration, jitter: Duration) {
        self.state.delay_ns.store(delay.as_nanos() as u64, Ordering::Relaxed);
        self.state.jitter_ns.store(jitter.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Hold (true) or deliver (false) the bytes of one direction.
    pub fn set_blackhole(&self, d: Direction, on: bool) {
        match d {
            Direction::Up => self.state.hold_up.store(on, Ordering::Relaxed),
            Direction::Down => self.state.hold_down.store(on, Ordering::Relaxed),
        }
        self.state.changed.notify_waiters();
    }

    /// Close every connection open now.
    pub fn reset(&self) {
        self.state.generation.fetch_add(1, Ordering::Relaxed);
        self.state.changed.notify_waiters();
    }
}

async fn connection(client: TcpStream, server: TcpStream, st: Arc<State>) {
    let generation = st.generation.load(Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pipe(cr, sw, Direction::Up, st.clone(), generation);
    let down = pipe(sr, cw, Direction::Down, st.clone(), generation);
    // When either direction ends (EOF, error, reset), the connection is over.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// One direction: a reader that stamps chunks, a writer that delivers them on time.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Direction,
    st: Arc<State>,
    generation: u64,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reset = |st: &State| st.generation.load(Ordering::Relaxed) != generation;
    let rst = st.clone();
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = rst.delay_ns.load(Ordering::Relaxed);
            let jitter = rst.jitter_ns.load(Ordering::Relaxed);
            let extra = if jitter > 0 { rand::rng().random_range(0..=jitter) } else { 0 };
            let at = (Instant::now() + Duration::from_nanos(delay + extra)).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let wst = st.clone();
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            loop {
                let held = match dir {
                    Direction::Up => wst.hold_up.load(Ordering::Relaxed),
                    Direction::Down => wst.hold_down.load(Ordering::Relaxed),
                };
                if !held || reset(&wst) {
                    break;
                }
                // Woken by a change, or look again shortly.
                let _ = tokio::time::timeout(Duration::from_millis(10), wst.changed.notified()).await;
            }
            if reset(&wst) || to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The reader saw EOF: pass the half-close on.
        let _ = to.shutdown().await;
    };
    let watch = async {
        while !reset(&st) {
            let _ = tokio::time::timeout(Duration::from_millis(50), st.changed.notified()).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(reader, writer) } => {}
        _ = watch => {}
    }
    // Dropping the halves closes both sockets.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
        let t0 = std::time::Instant::now();
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
        t0.elapsed()
    }

    #[tokio::test]
    async fn bytes_pass_and_delay_is_added_each_way() {
        let p = Proxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut s, b"hello").await;
        p.set_delay(Duration::from_millis(40), Duration::ZERO);
        let rtt = round_trip(&mut s, b"slow").await;
        // 40 ms up and 40 ms down.
        assert!(rtt >= Duration::from_millis(80), "rtt {rtt:?}");
        p.set_delay(Duration::ZERO, Duration::ZERO);
        // Order is kept under jitter.
        p.set_delay(Duration::from_millis(1), Duration::from_millis(5));
        for i in 0..20u8 {
            s.write_all(&[i]).await.unwrap();
        }
        let mut got = [0u8; 20];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got.to_vec(), (0..20u8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_blackhole_holds_bytes_until_it_lifts() {
        let p = Proxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut s, b"before").await;
        p.set_blackhole(Direction::Up, true);
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
        assert!(r.is_err(), "bytes crossed a blackhole");
        p.set_blackhole(Direction::Up, false);
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf, b"held");
        // Down only: the request arrives, the answer is held.
        p.set_blackhole(Direction::Down, true);
        s.write_all(b"ping").await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await.is_err());
        p.set_blackhole(Direction::Down, false);
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn reset_closes_open_connections_and_new_ones_work() {
        let p = Proxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut s, b"x").await;
        p.reset();
        let mut buf = [0u8; 8];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            // The next write or read fails, or reads EOF.
            let _ = s.write_all(b"y").await;
            matches!(s.read(&mut buf).await, Ok(0) | Err(_))
        })
        .await
        .unwrap();
        assert!(closed, "the connection survived a reset");
        let mut s2 = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut s2, b"again").await;
    }

    #[tokio::test]
    async fn only_loopback_upstreams() {
        let e = Proxy::start("10.1.2.3:6379".parse().unwrap()).await.err().unwrap();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
