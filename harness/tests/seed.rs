//! The blog post's own Cassandra lock (`cassandra-seed`) under its scaled pause
//! (`seed-pause`), and the evidence that names what broke it: the paused holder's
//! `DELETE ... IF EXISTS`, which checks no owner, listed under the overlap it
//! caused. `sqlite-naive` (a DELETE without owner check too) shows the same shape
//! without a server.

#![cfg(feature = "cassandra")]

mod common;

use common::{lockbench, text};

#[test]
fn the_posts_lock_breaks_under_a_pause_and_the_report_shows_the_unowned_delete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let scenario = common::scenario("seed-pause");
    let o =
        lockbench(&["run", &scenario, "-b", "cassandra-seed,sqlite-naive", "--out", out.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for b in s["backends"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        assert_eq!(b["verdict"], "broken", "{name}: {t}");
        // An overlap inside both leases, and between its two grants a release of
        // the key by a third client: the DELETE that freed the second holder's key.
        let freed = b["overlaps"].as_array().unwrap().iter().any(|o| {
            let holders = [&o["first"]["client"], &o["second"]["client"]];
            o["class"] == "within-lease"
                && o["others"].as_array().is_some_and(|ev| {
                    ev.iter().any(|e| e["f"] == "release" && e["type"] == "ok" && !holders.contains(&&e["client"]))
                })
        });
        assert!(freed, "{name}: no within-lease overlap lists the third client's release: {}", b["overlaps"]);
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("other clients released this key (what freed it)"), "the report shows it");
}
