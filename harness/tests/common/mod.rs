//! Helpers for scenario tests: shrink a scenario so it runs in well under a second,
//! and run it on an embedded backend through the library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockbench::check::{Verdict, check};
use lockbench::run::{BackendRun, run_backend};
use lockbench::scenario::{Overrides, Scenario};
use lockbench_backends::{BackendEnv, lookup};

pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every duration shrunk: the run lasts `d`, and that is all a scenario's shape needs.
pub fn short(mut s: Scenario, d: Duration) -> Scenario {
    s.apply_overrides(&Overrides { duration: Some(d), ..Default::default() }).expect("override");
    s
}

pub async fn run_on(s: &Scenario, backend: &str) -> (BackendRun, Verdict) {
    let dir = tempfile::tempdir().unwrap();
    let info = lookup(backend).unwrap_or_else(|| panic!("no backend {backend}"));
    let env = BackendEnv { dir: dir.path().to_owned(), ..Default::default() };
    let b = info.open(&env).expect("open");
    let r = run_backend(s, b, &env, None, &()).await;
    let v = check(&r.history);
    (r, v)
}
