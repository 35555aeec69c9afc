//! Where a user's server is, and how to log in to it, without the password ever
//! reaching an output.
//!
//! Forms (every kind): `host:port`, `user:password@host:port`, `:password@host:port`
//! and `user@host:port`; Redis also takes `redis://[user:password@]host:port[/db]`,
//! PostgreSQL (and PgBouncer) `postgres://[user:password@]host:port[/database]`
//! (or `postgresql://`), DynamoDB `http://host:port`.
//! A password can instead come from `LOCKBENCH_<KIND>_PASSWORD` (e.g.
//! `LOCKBENCH_REDIS_PASSWORD`), which keeps it out of shell history. TLS
//! (`rediss://`) is refused: not supported yet.
//!
//! Every password parsed here is remembered for this process, and [`redact`]
//! replaces it wherever it appears: error messages, recorded events and the
//! terminal all pass through it. [`redact`] also hides the `user:password@` part of
//! text that did not parse (the password of a malformed endpoint is never learnt).
//! This module must never print or format a password itself: [`Endpoint`]'s
//! `Display` and `Debug` leave it out.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ServerKind;
use crate::{BackendError, Result};

/// Passwords seen by this process, longest first (so that a password containing
/// another is replaced whole).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static ANY_SECRET: AtomicBool = AtomicBool::new(false);

pub(crate) fn remember(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut s = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_owned());
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
    ANY_SECRET.store(true, Ordering::Release);
}

/// `text` with every known password replaced by `***`, and the password part of
/// anything shaped like `user:password@host` hidden too. Cheap when no password was
/// ever given (the common case), so it can sit on every error path.
pub fn redact(text: &str) -> String {
    let mut out = hide_userinfo(text);
    if ANY_SECRET.load(Ordering::Acquire) {
        for s in SECRETS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
    }
    out
}

/// Like [`redact`], for recorded messages: allocates only when there is something
/// to hide.
pub fn redact_known(text: Box<str>) -> Box<str> {
    if !ANY_SECRET.load(Ordering::Acquire) {
        return text;
    }
    let secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return text;
    }
    let mut out = text.into_string();
    for s in secrets.iter() {
        out = out.replace(s.as_str(), "***");
    }
    out.into_boxed_str()
}

/// Overwrite every known password in this process's own command line (what
/// `ps` and `/proc/<pid>/cmdline` show, and what a child process shows between its
/// fork and its exec) with `*`, as database clients do with a password given as
/// an argument. Linux only; elsewhere, and on any error, it does nothing.
pub fn hide_in_own_command_line() {
    if !ANY_SECRET.load(Ordering::Acquire) {
        return;
    }
    let _ = (|| -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom, Write};
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // Fields after the command's closing parenthesis start at field 3;
        // arg_start and arg_end are fields 48 and 49.
        let rest = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let (Some(start), Some(end)) = (field(48), field(49)) else { return Ok(()) };
        if end <= start || end - start > 1 << 20 {
            return Ok(());
        }
        let mut mem = std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem")?;
        let mut buf = vec![0u8; (end - start) as usize];
        mem.seek(SeekFrom::Start(start))?;
        mem.read_exact(&mut buf)?;
        let mut changed = false;
        for secret in SECRETS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let s = secret.as_bytes();
            let mut i = 0;
            while i + s.len() <= buf.len() {
                if &buf[i..i + s.len()] == s {
                    buf[i..i + s.len()].fill(b'*');
                    changed = true;
                    i += s.len();
                } else {
                    i += 1;
                }
            }
        }
        if changed {
            mem.seek(SeekFrom::Start(start))?;
            mem.write_all(&buf)?;
        }
        Ok(())
    })();
}

/// Replace `:password` in every `…:password@host` of `text` with `:***`: a token
/// that holds `@` after a `:` is taken for credentials (a malformed endpoint's
/// password has not been learnt, so only its shape can hide it).
fn hide_userinfo(text: &str) -> String {
    if !text.contains('@') {
        return text.to_owned();
    }
    let is_sep = |c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ',' | '=' | '(' | ')' | '<' | '>');
    let mut out = String::with_capacity(text.len());
    for token in text.split_inclusive(is_sep) {
        let (body, sep) = match token.char_indices().last() {
            Some((j, c)) if is_sep(c) => (&token[..j], &token[j..]),
            _ => (token, ""),
        };
        match body.rfind('@') {
            Some(at) => {
                let (userinfo, rest) = body.split_at(at);
                // Skip a scheme ("redis://").
                let start = userinfo.find("://").map_or(0, |p| p + 3);
                match userinfo[start..].find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..start + colon]);
                        out.push_str(":***");
                        out.push_str(rest);
                    }
                    None => out.push_str(body),
                }
            }
            None => out.push_str(body),
        }
        out.push_str(sep);
    }
    out
}

/// One server address with optional credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    password: Option<String>,
    /// Redis database number (`redis://…/db`).
    pub db: Option<i64>,
    /// PostgreSQL database name (`postgres://…/name`).
    pub database: Option<String>,
    /// Where the password came from: the endpoint text, or this variable.
    pub password_var: Option<String>,
}

impl Endpoint {
    /// Parse one endpoint as a user wrote it (see the module's forms), taking the
    /// password from `LOCKBENCH_<KIND>_PASSWORD` when the text has none. Errors name
    /// the endpoint with any password hidden.
    pub fn parse(kind: ServerKind, text: &str) -> Result<Endpoint> {
        let bad = |why: &str| BackendError::Config(format!("{kind} endpoint `{}`: {why}", redact(text)));
        let t = text.trim();
        let (body, url) = match t.split_once("://") {
            Some(("redis", rest)) if kind == ServerKind::Redis => (rest, true),
            Some(("postgres" | "postgresql", rest)) if kind.is_postgres() => (rest, true),
            Some(("http", rest)) if kind == ServerKind::Dynamodb => (rest.trim_end_matches('/'), true),
            Some(("https", _)) if kind == ServerKind::Dynamodb => {
                return Err(bad("https:// (real AWS) is not supported yet; give http://host:port of a DynamoDB API"));
            }
            Some(("rediss", _)) => {
                return Err(bad("TLS (rediss://) is not supported yet; give host:port or redis://host:port"));
            }
            Some((scheme, _)) => return Err(bad(&format!("`{scheme}://` is not a {kind} endpoint form"))),
            None => (t, false),
        };
        let mut e = Self::parse_body(body, url).map_err(|why| bad(&why))?;
        // The password as typed (%-encoded in a URL) is a secret too: it is what a
        // command line shows.
        if let Some((_, raw)) = body.rsplit_once('@').and_then(|(u, _)| u.split_once(':')) {
            remember(raw);
        }
        if kind.is_postgres() {
            // `/123` names a database called "123" here, not a Redis number.
            if let Some(n) = e.db.take() {
                e.database = Some(n.to_string());
            }
        } else if let Some(d) = &e.database {
            return Err(bad(&format!("`/{d}` is not a database number")));
        }
        if e.db.is_some() && kind != ServerKind::Redis {
            return Err(bad("a /db suffix is only for redis"));
        }
        if e.password.is_none() {
            let var = kind.password_var();
            if let Ok(p) = std::env::var(&var)
                && !p.is_empty()
            {
                e.password = Some(p);
                e.password_var = Some(var);
            }
        }
        if let Some(p) = &e.password {
            remember(p);
        }
        Ok(e)
    }

    /// Parse the form carried between lockbench's own processes ([`Endpoint::to_env`]).
    pub fn from_env(text: &str) -> Result<Endpoint> {
        let e = Self::parse_body(text, false)
            .map_err(|why| BackendError::Config(format!("endpoint `{}`: {why}", redact(text))))?;
        if let Some(p) = &e.password {
            remember(p);
        }
        Ok(e)
    }

    fn parse_body(body: &str, url: bool) -> std::result::Result<Endpoint, String> {
        // The password may itself hold '@' or '/': the host part follows the last
        // '@', and only after it can a '/' start the database number.
        let (userinfo, after) = match body.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, body),
        };
        let (hostport, path) = match after.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (after, None),
        };
        let decode = |s: &str| if url { percent_decode(s) } else { Ok(s.to_owned()) };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(decode(user)?), Some(decode(pw)?)),
                None => (Some(decode(u)?), None),
            },
        };
        let user = user.filter(|u| !u.is_empty());
        let password = password.filter(|p| !p.is_empty());
        let Some((host, port)) = hostport.rsplit_once(':') else {
            return Err("no port: write host:port".into());
        };
        if host.is_empty() {
            return Err("no host: write host:port".into());
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("`{port}` is not a port (1-65535)")),
        };
        // A number is a Redis database; a name is a PostgreSQL database (the kind
        // decides, in `parse`, which one it may have).
        let (db, database) = match path.map(|p| p.trim_end_matches('/')) {
            None | Some("") => (None, None),
            Some(d) => match d.parse::<i64>() {
                Ok(n) => (Some(n), None),
                Err(_) if d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) => {
                    (None, Some(d.to_owned()))
                }
                Err(_) => return Err(format!("`/{d}` is not a database number or name")),
            },
        };
        Ok(Endpoint { host: host.to_owned(), port, user, password, db, database, password_var: None })
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The same endpoint at another address (a proxy in front of it).
    pub fn at(&self, addr: &str) -> Result<Endpoint> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| BackendError::Config(format!("`{addr}` is not host:port")))?;
        Ok(Endpoint { host, port, ..self.clone() })
    }

    /// The form lockbench hands its backends and worker processes (through memory
    /// and pipes, never a command line): `[user[:password]@]host:port[/db]`. It holds
    /// the password: never print it (use `Display`, or [`redact`]).
    pub fn to_env(&self) -> String {
        let mut s = String::new();
        if self.user.is_some() || self.password.is_some() {
            s.push_str(self.user.as_deref().unwrap_or(""));
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.addr());
        if let Some(db) = self.db {
            s.push_str(&format!("/{db}"));
        }
        if let Some(d) = &self.database {
            s.push_str(&format!("/{d}"));
        }
        s
    }

    /// The form for a reproduce command: the password replaced by its variable, for
    /// a shell to expand: `user:${LOCKBENCH_REDIS_PASSWORD}@host:port`.
    pub fn reproducible(&self, kind: ServerKind) -> String {
        let mut s = String::new();
        if self.user.is_some() || self.password.is_some() {
            s.push_str(self.user.as_deref().unwrap_or(""));
            if self.password.is_some() {
                s.push_str(&format!(":${{{}}}", kind.password_var()));
            }
            s.push('@');
        }
        s.push_str(&self.addr());
        if let Some(db) = self.db {
            s.push_str(&format!("/{db}"));
        }
        if let Some(d) = &self.database {
            s.push_str(&format!("/{d}"));
        }
        s
    }
}

/// Never the password.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.addr())?;
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        if let Some(d) = &self.database {
            write!(f, "/{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self}{})", if self.password.is_some() { ", password: ***" } else { "" })
    }
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => return Err("a `%` not followed by two hex digits".into()),
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "credentials that are not UTF-8 after %-decoding".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses_and_none_shows_its_password() {
        for (text, user, db) in [
            ("127.0.0.1:6379", None, None),
            (":Pw1@127.0.0.1:6379", None, None),
            ("alice:Pw2@127.0.0.1:6379", Some("alice"), None),
            ("bob@127.0.0.1:6379", Some("bob"), None),
            ("redis://:Pw3@127.0.0.1:6379", None, None),
            ("redis://carol:Pw4@127.0.0.1:6379/2", Some("carol"), Some(2)),
            ("redis://127.0.0.1:6379/", None, None),
            ("redis://:p%40ss@127.0.0.1:6379", None, None),
        ] {
            let e = Endpoint::parse(ServerKind::Redis, text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 6379), "{text}");
            assert_eq!(e.user.as_deref(), user, "{text}");
            assert_eq!(e.db, db, "{text}");
            let shown = format!("{e} {e:?} {}", e.reproducible(ServerKind::Redis));
            if let Some(p) = e.password() {
                assert!(!shown.contains(p), "{shown}");
                assert!(!redact(&e.to_env()).contains(p));
                assert_eq!(Endpoint::from_env(&e.to_env()).unwrap(), e);
            }
        }
        assert_eq!(Endpoint::parse(ServerKind::Redis, "redis://:p%40ss@h:1").unwrap().password(), Some("p@ss"));
        assert_eq!(redact("argv: redis://:p%40ss@h:1"), "argv: redis://:***@h:1");
        // A password with '/' or '@' (base64 ones often have '/') survives the round trip.
        let e = Endpoint::parse(ServerKind::Redis, "u:a/b@c+d=@127.0.0.1:6379").unwrap();
        assert_eq!((e.password(), e.port), (Some("a/b@c+d="), 6379));
        assert_eq!(Endpoint::from_env(&e.to_env()).unwrap(), e);
    }

    #[test]
    fn postgres_urls_carry_a_database_name_and_never_show_their_password() {
        for (text, user, db) in [
            ("postgres://app:PgPw1@127.0.0.1:5432/locks", Some("app"), Some("locks")),
            ("postgresql://app:PgPw1@127.0.0.1:5432", Some("app"), None),
            ("app:PgPw1@127.0.0.1:5432", Some("app"), None),
            ("postgres://127.0.0.1:5432/7", None, Some("7")),
        ] {
            let e = Endpoint::parse(ServerKind::Postgres, text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((e.host.as_str(), e.port, e.user.as_deref()), ("127.0.0.1", 5432, user), "{text}");
            assert_eq!(e.database.as_deref(), db, "{text}");
            assert_eq!(e.db, None, "{text}");
            let shown = format!("{e} {e:?} {}", e.reproducible(ServerKind::Postgres));
            assert!(!shown.contains("PgPw1"), "{shown}");
            let back = Endpoint::from_env(&e.to_env()).unwrap();
            assert_eq!(
                (back.password(), back.database.clone().or(back.db.map(|n| n.to_string()))),
                (e.password(), e.database.clone())
            );
        }
        // A database name is not a Redis database number, nor a postgres URL a Redis one.
        assert!(Endpoint::parse(ServerKind::Redis, "redis://h:1/locks").is_err());
        assert!(Endpoint::parse(ServerKind::Redis, "postgres://h:1").is_err());
        assert!(Endpoint::parse(ServerKind::Cassandra, "h:9042/ks").is_err());
    }

    #[test]
    fn malformed_forms_are_refused_without_their_password() {
        for text in [
            ":Secret9@127.0.0.1",
            "redis://:Secret9@127.0.0.1:notaport",
            "rediss://:Secret9@127.0.0.1:6380",
            "http://u:Secret9@127.0.0.1:80",
            "u:Secret9@:6379",
            "redis://:Secret9@127.0.0.1:6379/x",
        ] {
            let err = Endpoint::parse(ServerKind::Redis, text).unwrap_err().to_string();
            assert!(!err.contains("Secret9"), "{text}: {err}");
            assert!(err.contains("127.0.0.1") || err.contains(":6379"), "names the endpoint: {err}");
        }
        let err = Endpoint::parse(ServerKind::Redis, "rediss://h:1").unwrap_err().to_string();
        assert!(err.contains("TLS"), "{err}");
        assert!(Endpoint::parse(ServerKind::Cassandra, "h:9042/1").is_err());
    }

    #[test]
    fn redact_hides_known_passwords_and_userinfo_shapes() {
        let _ = Endpoint::parse(ServerKind::Redis, "u:KnownPw7@h:1").unwrap();
        assert_eq!(redact("auth failed for KnownPw7"), "auth failed for ***");
        assert_eq!(&*redact_known("x KnownPw7 y".into()), "x *** y");
        assert_eq!(redact("`:Other8@10.0.0.1` bad"), "`:***@10.0.0.1` bad");
        assert_eq!(redact("redis://me:Other8@h:1/"), "redis://me:***@h:1/");
        assert_eq!(redact("no secret@here"), "no secret@here");
    }
}
