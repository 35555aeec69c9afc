//! A dedicated Redis connection for one session: RESP2 over one TCP socket, read
//! and written by the session's own task.
//!
//! The `redis` crate's connection manager sends every command through a channel to
//! a driver task and waits for the answer on another: two task hand-offs per
//! request, several microseconds each on loopback, which is what lockbench would
//! then report as the lock's latency. A session has at most one request in flight,
//! so it needs no multiplexing: it writes the command and reads the answer itself.
//!
//! It reconnects on its own: a request that finds no connection (never opened, or
//! dropped after an error) opens one first (and authenticates, and selects the
//! database). Errors are classified as everywhere else: nothing sent (refused,
//! authentication failed, no file descriptor, connect timed out) is `Unavailable`;
//! sent and not answered (timeout, dropped connection) is `Unknown`, and the
//! connection is dropped so that a late answer can never be read as the next
//! command's; an error reply of the server is `Rejected`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::servers::Endpoint;
use crate::{BackendError, Result};

/// An answer of the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Error(String),
    /// An array of scalars (a nested array is refused as a bad answer).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn int(self) -> Result<i64> {
        match self {
            Reply::Int(n) => Ok(n),
            Reply::Error(e) => Err(BackendError::Rejected(e)),
            other => Err(BackendError::Rejected(format!("unexpected answer {other:?}"))),
        }
    }
}

pub struct Conn {
    endpoint: Endpoint,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
    out: Vec<u8>,
    line: Vec<u8>,
    /// Requests written to the server so far (the handshake's included).
    pub sent: u64,
}

impl Conn {
    /// A connection to `endpoint` (opened by the first request). `timeout` bounds
    /// the connect and every answer.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Conn> {
        Ok(Conn {
            endpoint: Endpoint::from_env(endpoint)?,
            timeout,
            stream: None,
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(64),
            sent: 0,
        })
    }

    /// Send one command and read its answer (an error reply is `Ok(Reply::Error)`).
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        if self.stream.is_none() {
            self.open().await?;
        }
        let r = self.request(args).await;
        if r.is_err() {
            // A late answer must never be read as the next command's.
            self.stream = None;
        }
        r
    }

    async fn request(&mut self, args: &[&[u8]]) -> Result<Reply> {
        let Conn { endpoint, timeout, stream, out, line, sent } = self;
        encode(args, out);
        *sent += 1;
        let stream = stream.as_mut().expect("opened");
        let io = async {
            stream.get_mut().write_all(out).await?;
            read_reply(stream, line).await
        };
        match tokio::time::timeout(*timeout, io).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(BackendError::Unknown(format!("redis at {endpoint}: {e}"))),
            Err(_) => Err(BackendError::Unknown(format!("redis at {endpoint}: no answer within {timeout:?}"))),
        }
    }

    /// Connect, authenticate, select the database. Nothing of a lock request has
    /// been sent yet, so every failure here is `Unavailable`.
    async fn open(&mut self) -> Result<()> {
        let e = &self.endpoint;
        let unavailable = |what: String| BackendError::Unavailable(format!("redis at {e}: {what}"));
        let tcp = match tokio::time::timeout(self.timeout, TcpStream::connect((e.host.as_str(), e.port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(err)) => return Err(unavailable(err.to_string())),
            Err(_) => return Err(unavailable(format!("could not connect within {:?}", self.timeout))),
        };
        let _ = tcp.set_nodelay(true);
        self.stream = Some(BufReader::with_capacity(4096, tcp));
        let (user, password, db) = (e.user.clone(), e.password().map(str::to_owned), e.db.unwrap_or(0));
        let mut steps: Vec<Vec<Vec<u8>>> = Vec::new();
        if let Some(p) = password {
            let mut auth = vec![b"AUTH".to_vec()];
            if let Some(u) = user {
                auth.push(u.into_bytes());
            }
            auth.push(p.into_bytes());
            steps.push(auth);
        }
        if db != 0 {
            steps.push(vec![b"SELECT".to_vec(), db.to_string().into_bytes()]);
        }
        for step in steps {
            let args: Vec<&[u8]> = step.iter().map(Vec::as_slice).collect();
            let r = self.request(&args).await;
            let fail = match r {
                Ok(Reply::Error(text)) => Some(crate::servers::redact(&text)),
                Ok(_) => None,
                Err(err) => Some(err.to_string()),
            };
            if let Some(why) = fail {
                self.stream = None;
                let what = if step[0] == b"AUTH" { "authentication failed" } else { "SELECT failed" };
                return Err(BackendError::Unavailable(format!("redis at {}: {what}: {why}", self.endpoint)));
            }
        }
        Ok(())
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

async fn read_reply(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<Reply> {
    let n = match read_scalar(r, line).await? {
        Ok(v) => return Ok(v),
        Err(n) if n < 0 => return Ok(Reply::Array(None)),
        Err(n) if n > 1024 => return Err(bad("an array of over 1024 values")),
        Err(n) => n,
    };
    let mut items = Vec::with_capacity(n as usize);
    for _ in 0..n {
        match read_scalar(r, line).await? {
            Ok(v) => items.push(v),
            Err(_) => return Err(bad("a nested array")),
        }
    }
    Ok(Reply::Array(Some(items)))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad answer: {what}"))
}

/// One value, or an array's header: `Err(length)` (-1: a null array).
async fn read_scalar(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<Result<Reply, i64>> {
    line.clear();
    if r.read_until(b'\n', line).await? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
    }
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(bad("a truncated line"));
    }
    let body = std::str::from_utf8(&line[1..line.len() - 2]).map_err(|_| bad("not UTF-8"))?;
    Ok(Ok(match line[0] {
        b'+' => Reply::Simple(body.to_owned()),
        b'-' => Reply::Error(body.to_owned()),
        b':' => Reply::Int(body.parse().map_err(|_| bad("an integer"))?),
        b'$' => {
            let n: i64 = body.parse().map_err(|_| bad("a length"))?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut v = vec![0; n as usize + 2];
                r.read_exact(&mut v).await?;
                v.truncate(n as usize);
                Reply::Bulk(Some(v))
            }
        }
        b'*' => return Ok(Err(body.parse().map_err(|_| bad("a length"))?)),
        _ => return Err(bad("an unexpected type")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        encode(&[b"EVALSHA", b"ab", b"1", b"k"], &mut out);
        assert_eq!(out, b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n");
    }

    #[tokio::test]
    async fn replies_of_every_kind_are_read() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"+PONG\r\n:42\r\n$3\r\nabc\r\n$-1\r\n-ERR no\r\n*2\r\n$1\r\nh\r\n$1\r\n7\r\n*-1\r\n*0\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut r = BufReader::new(TcpStream::connect(addr).await.unwrap());
        let mut line = Vec::new();
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Int(42));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Bulk(Some(b"abc".to_vec())));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Bulk(None));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Error("ERR no".into()));
        let pair = Reply::Array(Some(vec![Reply::Bulk(Some(b"h".to_vec())), Reply::Bulk(Some(b"7".to_vec()))]));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), pair);
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Array(None));
        assert_eq!(read_reply(&mut r, &mut line).await.unwrap(), Reply::Array(Some(vec![])));
    }

    #[tokio::test]
    async fn a_silent_server_is_an_unknown_outcome_and_the_connection_is_dropped() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let mut c = Conn::new(&format!("127.0.0.1:{port}"), Duration::from_millis(100)).unwrap();
        let e = c.call(&[b"PING"]).await.unwrap_err();
        assert!(e.is_indeterminate(), "{e:?}");
        assert!(c.stream.is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_sent_nothing() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = Conn::new(&format!("127.0.0.1:{port}"), Duration::from_millis(500)).unwrap();
        let e = c.call(&[b"PING"]).await.unwrap_err();
        assert!(matches!(e, BackendError::Unavailable(_)) && e.to_string().contains("refused"), "{e}");
        assert_eq!(c.sent, 0);
    }
}
