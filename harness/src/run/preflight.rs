//! Preflight: before a backend's load starts, one session is opened and pinged
//! within a deadline, so that a dead, silent or misconfigured server stops the
//! command with its name and what it said, instead of becoming a run with no
//! grants (or worse, a `safe` one).
//!
//! Servers given with `--endpoints` are probed once before any scenario runs; a
//! local server after its provider reports it ready. Redlock's own `ping` answers
//! when a majority of its instances do, so it is refused only below a majority.
//! Endpoints in messages go through [`lockbench_backends::servers::redact`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lockbench_backends::LockBackend;
use lockbench_backends::servers::redact;

/// A backend that did not answer its probe.
#[derive(Debug, Clone)]
pub struct PreflightError {
    pub backend: String,
    /// The endpoints probed, redacted, comma-separated (empty for embedded backends).
    pub endpoints: String,
    /// What went wrong: the server's answer, or the deadline.
    pub what: String,
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoints.is_empty() {
            write!(f, "{} did not answer: {}", self.backend, self.what)
        } else {
            write!(f, "{} at {} did not answer: {}", self.backend, self.endpoints, self.what)
        }
    }
}

impl std::error::Error for PreflightError {}

/// Hide any password of `endpoints` that a message may repeat.
fn scrub(mut text: String, endpoints: &[String]) -> String {
    for e in endpoints {
        if let Some((userinfo, _)) = e.rsplit_once('@') {
            let password = userinfo.rsplit(':').next().unwrap_or(userinfo);
            if !password.is_empty() {
                text = text.replace(password, "***");
            }
            if !userinfo.is_empty() {
                text = text.replace(userinfo, "***");
            }
        }
    }
    text
}

/// Open one session of `backend` and ping it, all within `timeout`.
pub async fn probe(
    backend: &Arc<dyn LockBackend>,
    endpoints: &[String],
    timeout: Duration,
) -> Result<(), PreflightError> {
    let fail = |what: String| PreflightError {
        backend: backend.name().to_owned(),
        endpoints: endpoints.iter().map(|e| redact(e)).collect::<Vec<_>>().join(","),
        what: scrub(what, endpoints),
    };
    let attempt = async {
        let mut s = backend.session().await?;
        s.ping().await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {} (--connect-timeout)", crate::scenario::Dur(timeout)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_repeat_a_password() {
        let eps = vec![":WrongPw@127.0.0.1:6379".to_owned()];
        let t = scrub("WRONGPASS invalid password WrongPw for redis://:WrongPw@127.0.0.1:6379/".into(), &eps);
        assert!(!t.contains("WrongPw"), "{t}");
        let e = PreflightError { backend: "redis".into(), endpoints: redact(&eps[0]), what: t };
        assert!(
            e.to_string().starts_with("redis at ") && e.to_string().contains("127.0.0.1:6379 did not answer"),
            "{e}"
        );
        assert!(!e.to_string().contains("WrongPw"), "{e}");
    }
}
