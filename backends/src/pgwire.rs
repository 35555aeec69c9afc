//! A dedicated PostgreSQL connection for one session: the frontend/backend
//! protocol (version 3) over one TCP socket, read and written by the session's own
//! task, with messages encoded and decoded by the `postgres-protocol` crate.
//!
//! `tokio-postgres` hands every statement to a connection task through a channel
//! and waits for the answer on another: two task hand-offs per statement, which at
//! one client cost lockbench part of pgbench's rate (scripts/bench-postgres: 0.81
//! with tokio-postgres, 0.85–0.88 with this; the `redis` crate's connection manager
//! cost the same against redis-benchmark). A session has
//! at most one statement in flight, so it needs no task: it writes Bind, Execute
//! and Sync itself and reads up to ReadyForQuery, as pgbench does.
//!
//! What it speaks: the startup message; authentication by trust, cleartext
//! password, MD5 or SCRAM-SHA-256 (no TLS); named prepared statements with binary
//! parameters and results (`prepare`, `execute`); simple queries (`simple`, text
//! results, for statements that must not be prepared: PgBouncer in transaction
//! mode runs each on whichever server connection is free). Notices and parameter
//! changes are skipped. An error response is read through to ReadyForQuery, so the
//! connection stays usable for the next statement; an I/O error or an unexpected
//! message leaves it unusable (the caller drops it).

use std::io;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use postgres_protocol::{IsNull, Oid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const INT8: Oid = 20;
pub const TEXT: Oid = 25;
pub const FLOAT8: Oid = 701;

/// What the server said in an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// Not localized: ERROR, FATAL, PANIC.
    pub severity: String,
    /// The SQLSTATE, e.g. `55P03` (lock_not_available).
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (SQLSTATE {})", self.severity, self.message, self.code)
    }
}

impl ServerError {
    fn parse(body: &ErrorResponseBody) -> io::Result<ServerError> {
        let (mut localized, mut severity, mut code, mut message) = (None, None, None, None);
        let mut fields = body.fields();
        while let Some(f) = fields.next()? {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'S' => localized = Some(v),
                b'V' => severity = Some(v),
                b'C' => code = Some(v),
                b'M' => message = Some(v),
                _ => {}
            }
        }
        Ok(ServerError {
            severity: severity.or(localized).unwrap_or_else(|| "ERROR".into()),
            code: code.unwrap_or_else(|| "XX000".into()),
            message: message.unwrap_or_default(),
        })
    }

    /// The session itself ends with this error (FATAL, PANIC).
    pub fn ends_session(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

#[derive(Debug)]
pub enum Error {
    /// The server answered with an error. Unless it `ends_session`, the statement
    /// did nothing and the connection is still usable.
    Server(ServerError),
    /// The connection failed (closed, reset, a message that makes no sense): it is
    /// unusable, and whatever was sent may or may not have run.
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Server(e) => e.fmt(f),
            Error::Io(e) => e.fmt(f),
        }
    }
}

impl Error {
    /// The connection is gone (and with it the session's advisory locks).
    pub fn lost(&self) -> bool {
        match self {
            Error::Server(e) => e.ends_session(),
            Error::Io(_) => true,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn protocol(what: String) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidData, what))
}

/// A parameter of a prepared statement, sent in binary.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Int8(i64),
    Float8(f64),
    Text(&'a str),
}

/// What a prepared statement returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The first column of the first row, if there was a row, read as an integer
    /// from its binary form: a boolean (1 byte) as 0 or 1, an int4 or int8 as
    /// itself, a void or NULL as 0.
    pub first: Option<i64>,
    /// Rows returned, or affected (from the command tag).
    pub rows: u64,
}

fn int_of(bytes: Option<&[u8]>) -> io::Result<i64> {
    Ok(match bytes {
        None | Some([]) => 0,
        Some([b]) => *b as i64,
        Some(b) if b.len() == 4 => i32::from_be_bytes(b.try_into().expect("4 bytes")) as i64,
        Some(b) if b.len() == 8 => i64::from_be_bytes(b.try_into().expect("8 bytes")),
        Some(b) => {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a {}-byte value is no integer", b.len())));
        }
    })
}

/// Login details.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: &'a str,
    pub application: &'a str,
}

pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Conn {
    /// Connect and log in; returns once the server is ready for a query. The
    /// caller bounds it with a timeout.
    pub async fn connect(host: &str, port: u16, login: &Login<'_>) -> Result<Conn> {
        let stream = TcpStream::connect((host, port)).await?;
        let _ = stream.set_nodelay(true);
        let mut c = Conn { stream, rbuf: BytesMut::with_capacity(8192), wbuf: BytesMut::with_capacity(512) };
        let params = [("user", login.user), ("database", login.database), ("application_name", login.application)];
        frontend::startup_message(params.iter().copied(), &mut c.wbuf)?;
        c.flush().await?;
        c.authenticate(login).await?;
        loop {
            match c.next().await? {
                Message::ReadyForQuery(_) => return Ok(c),
                Message::BackendKeyData(_) => {}
                Message::ErrorResponse(b) => return Err(Error::Server(ServerError::parse(&b)?)),
                _ => return Err(protocol("unexpected message after login".into())),
            }
        }
    }

    async fn authenticate(&mut self, login: &Login<'_>) -> Result<()> {
        let password = || {
            login.password.map(str::as_bytes).ok_or_else(|| {
                Error::Server(ServerError {
                    severity: "FATAL".into(),
                    code: "28P01".into(),
                    message: format!("the server asks user \"{}\" for a password and none was given", login.user),
                })
            })
        };
        match self.next().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?, &mut self.wbuf)?;
            }
            Message::AuthenticationMd5Password(b) => {
                let hash = md5_hash(login.user.as_bytes(), password()?, b.salt());
                frontend::password_message(hash.as_bytes(), &mut self.wbuf)?;
            }
            Message::AuthenticationSasl(b) => {
                let mut offered = Vec::new();
                let mut mechanisms = b.mechanisms();
                while let Some(m) = mechanisms.next()? {
                    offered.push(m.to_owned());
                }
                if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(protocol(format!(
                        "the server offers SASL {offered:?}; only {SCRAM_SHA_256} is supported"
                    )));
                }
                let mut scram = ScramSha256::new(password()?, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut self.wbuf)?;
                self.flush().await?;
                match self.next().await? {
                    Message::AuthenticationSaslContinue(b) => scram.update(b.data())?,
                    Message::ErrorResponse(b) => return Err(Error::Server(ServerError::parse(&b)?)),
                    _ => return Err(protocol("unexpected message during SCRAM".into())),
                }
                frontend::sasl_response(scram.message(), &mut self.wbuf)?;
                self.flush().await?;
                match self.next().await? {
                    Message::AuthenticationSaslFinal(b) => scram.finish(b.data())?,
                    Message::ErrorResponse(b) => return Err(Error::Server(ServerError::parse(&b)?)),
                    _ => return Err(protocol("unexpected message during SCRAM".into())),
                }
            }
            Message::ErrorResponse(b) => return Err(Error::Server(ServerError::parse(&b)?)),
            _ => return Err(protocol("the server asks for an authentication method lockbench does not speak".into())),
        }
        self.flush().await?;
        match self.next().await? {
            Message::AuthenticationOk => Ok(()),
            Message::ErrorResponse(b) => Err(Error::Server(ServerError::parse(&b)?)),
            _ => Err(protocol("unexpected message after the password".into())),
        }
    }

    /// Prepare named statements (name, SQL, parameter types), in one round trip.
    pub async fn prepare(&mut self, statements: &[(&str, &str, &[Oid])]) -> Result<()> {
        for (name, sql, types) in statements {
            frontend::parse(name, sql, types.iter().copied(), &mut self.wbuf)?;
        }
        frontend::sync(&mut self.wbuf);
        self.flush().await?;
        let mut failed = None;
        loop {
            match self.next().await? {
                Message::ParseComplete => {}
                Message::ErrorResponse(b) => failed = Some(ServerError::parse(&b)?),
                Message::ReadyForQuery(_) => return failed.map_or(Ok(()), |e| Err(Error::Server(e))),
                _ => return Err(protocol("unexpected message after Parse".into())),
            }
        }
    }

    /// Run a prepared statement with binary parameters.
    pub async fn execute(&mut self, name: &str, params: &[Value<'_>]) -> Result<Answer> {
        let bound = frontend::bind(
            "",
            name,
            [1],
            params.iter(),
            |v, buf| {
                match *v {
                    Value::Int8(n) => buf.extend_from_slice(&n.to_be_bytes()),
                    Value::Float8(f) => buf.extend_from_slice(&f.to_be_bytes()),
                    Value::Text(s) => buf.extend_from_slice(s.as_bytes()),
                }
                Ok(IsNull::No)
            },
            [1],
            &mut self.wbuf,
        );
        if bound.is_err() {
            self.wbuf.clear();
            return Err(protocol("could not encode the parameters".into()));
        }
        frontend::execute("", 0, &mut self.wbuf)?;
        frontend::sync(&mut self.wbuf);
        self.flush().await?;
        let mut answer = Answer::default();
        let mut failed = None;
        loop {
            match self.next().await? {
                Message::BindComplete => {}
                Message::DataRow(row) => {
                    if answer.first.is_none() {
                        let mut ranges = row.ranges();
                        let first = ranges.next()?.flatten().map(|r| &row.buffer()[r]);
                        answer.first = Some(int_of(first)?);
                    }
                }
                Message::CommandComplete(b) => answer.rows = rows_of(b.tag()?),
                Message::EmptyQueryResponse => {}
                Message::ErrorResponse(b) => failed = Some(ServerError::parse(&b)?),
                Message::ReadyForQuery(_) => return failed.map_or(Ok(answer), |e| Err(Error::Server(e))),
                _ => return Err(protocol("unexpected message after Execute".into())),
            }
        }
    }

    /// A simple query (one or more statements in one text); the first column of
    /// the first row, as text.
    pub async fn simple(&mut self, sql: &str) -> Result<Option<String>> {
        frontend::query(sql, &mut self.wbuf)?;
        self.flush().await?;
        let (mut first, mut failed, mut seen_row) = (None, None, false);
        loop {
            match self.next().await? {
                Message::RowDescription(_) | Message::CommandComplete(_) | Message::EmptyQueryResponse => {}
                Message::DataRow(row) => {
                    if !seen_row {
                        seen_row = true;
                        let mut ranges = row.ranges();
                        first =
                            ranges.next()?.flatten().map(|r| String::from_utf8_lossy(&row.buffer()[r]).into_owned());
                    }
                }
                Message::ErrorResponse(b) => failed = Some(ServerError::parse(&b)?),
                Message::ReadyForQuery(_) => return failed.map_or(Ok(first), |e| Err(Error::Server(e))),
                _ => return Err(protocol("unexpected message after Query".into())),
            }
        }
    }

    /// Has the server closed the connection (or said it is ending the session)?
    /// Reads only what has already arrived: no request is sent, and when nothing
    /// arrived it costs no system call.
    pub fn closed(&mut self) -> bool {
        loop {
            let mut chunk = [0u8; 1024];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        // Between statements the server sends only notices, parameter changes and,
        // when it ends the session, a FATAL error.
        loop {
            match Message::parse(&mut self.rbuf) {
                Ok(None) => return false,
                Ok(Some(Message::ErrorResponse(b))) => {
                    return ServerError::parse(&b).map_or(true, |e| e.ends_session());
                }
                Ok(Some(
                    Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_),
                )) => {}
                Ok(Some(_)) | Err(_) => return true,
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        r
    }

    /// The next message that is not a notice or a parameter change.
    async fn next(&mut self) -> Result<Message> {
        loop {
            match Message::parse(&mut self.rbuf)? {
                Some(Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_)) => {}
                Some(m) => return Ok(m),
                None => {
                    self.rbuf.reserve(4096);
                    if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                        return Err(Error::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        )));
                    }
                }
            }
        }
    }
}

/// Rows from a command tag: its last word (`SELECT 1`, `UPDATE 0`, `INSERT 0 1`).
fn rows_of(tag: &str) -> u64 {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_from_the_tags_last_word() {
        assert_eq!(rows_of("SELECT 1"), 1);
        assert_eq!(rows_of("UPDATE 0"), 0);
        assert_eq!(rows_of("INSERT 0 1"), 1);
        assert_eq!(rows_of("SET"), 0);
    }

    #[test]
    fn binary_values_read_as_integers() {
        assert_eq!(int_of(Some(&[1])).unwrap(), 1);
        assert_eq!(int_of(Some(&[0])).unwrap(), 0);
        assert_eq!(int_of(Some(&7i64.to_be_bytes())).unwrap(), 7);
        assert_eq!(int_of(Some(&(-3i32).to_be_bytes())).unwrap(), -3);
        assert_eq!(int_of(Some(&[])).unwrap(), 0);
        assert_eq!(int_of(None).unwrap(), 0);
        assert!(int_of(Some(&[1, 2, 3])).is_err());
    }
}
