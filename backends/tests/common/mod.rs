//! What the backend tests run against: every backend of the registry that can run
//! here, each opened fresh (embedded) or on servers shared by the whole test binary.

#![allow(dead_code)]

use std::sync::Arc;

use lockbench_backends::{BackendEnv, LockBackend, Needs, registry};

pub struct Target {
    pub backend: Arc<dyn LockBackend>,
    /// Keeps a temp dir alive as long as the backend.
    _dir: Option<tempfile::TempDir>,
}

/// Every compiled backend, opened. Server backends get their servers from
/// `servers::shared` (one set per test binary).
///
/// LOCKBENCH_TEST_BACKENDS=a,b narrows this to those backends, for a quick run
/// while working on one (said on stderr; CI never sets it).
pub async fn targets() -> Vec<Target> {
    let only = std::env::var("LOCKBENCH_TEST_BACKENDS").ok();
    let mut out = Vec::new();
    for info in registry() {
        if !info.compiled {
            continue;
        }
        if let Some(only) = &only
            && !only.split(',').any(|b| b.trim() == info.name)
        {
            eprintln!("-- {}: left out (LOCKBENCH_TEST_BACKENDS={only})", info.name);
            continue;
        }
        match info.needs {
            // A hosted service runs the suite only where its key is set; elsewhere
            // it is said not run (and conformance's `a_hosted_service_runs_the_suite_with_its_key`
            // shows as ignored).
            Needs::Service { var } => {
                if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
                    let env = BackendEnv::default();
                    out.push(Target { backend: info.open(&env).expect("hosted backend opens"), _dir: None });
                } else {
                    eprintln!("-- {}: not run ({var} is not set)", info.name);
                }
            }
            Needs::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let env = BackendEnv { dir: dir.path().to_owned(), ..Default::default() };
                out.push(Target { backend: info.open(&env).expect("embedded backend opens"), _dir: Some(dir) });
            }
            Needs::Servers { kind, n } => {
                // The two Sentinel variants take the same keys on the same primary,
                // and a lease one leaves would block the other: a cluster each.
                // So do the DynamoDB variants: a lock client's item that outlived its
                // lease blocks the key until a waiter has watched it for a lease.
                use lockbench_backends::servers::ServerKind::{Dynamodb, RedisSentinel};
                let own = if matches!(kind, RedisSentinel | Dynamodb) { info.name } else { "" };
                let endpoints = servers::endpoints(kind, n, own).await;
                let env = BackendEnv { endpoints, ..Default::default() };
                out.push(Target { backend: info.open(&env).expect("server backend opens"), _dir: None });
            }
        }
    }
    out
}

pub mod servers {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
    use lockbench_backends::servers::{ServerKind, Servers};

    /// Endpoints of `n` running servers of `kind`, started once per test binary and
    /// killed when it exits (the local provider's parent-death signal).
    /// (`own`: a name for a cluster of its own; "" shares the kind's.)
    pub async fn endpoints(kind: ServerKind, n: usize, own: &'static str) -> Vec<String> {
        type Clusters = HashMap<(ServerKind, usize, &'static str), &'static LocalCluster>;
        static CLUSTERS: OnceLock<Mutex<Clusters>> = OnceLock::new();
        let mut m = CLUSTERS.get_or_init(Default::default).lock().unwrap();
        let c = m.entry((kind, n, own)).or_insert_with(|| {
            let c = LocalCluster::start(kind, n, ServerOptions::default())
                .unwrap_or_else(|e| panic!("cannot start {n} {kind} server(s): {e}\n(run scripts/setup)"));
            Box::leak(Box::new(c))
        });
        c.endpoints()
    }
}
