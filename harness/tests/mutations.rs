//! Property tests on what lockbench reads: randomly mutated scenario files and
//! history lines never panic; each either loads or is refused with the file and
//! line named. A scenario that loads writes itself back (scenario.toml) in a form
//! that loads again. Seeded, so a failure repeats.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use lockbench::cli::shipped_scenarios;
use lockbench::scenario::Scenario;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKENS: &[&str] = &[
    "=",
    "\"",
    "[",
    "]",
    "[[faults]]",
    "[lock]",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "\"0s\"",
    "\"-5ms\"",
    "\"99999999h\"",
    "\"uniform(5ms, 1ms)\"",
    "\"zipf(-1)\"",
    "kind = \"crash-holder\"",
    "kind = \"partition\"",
    "at = \"1ms\"",
    "clients = 100000",
    "servers = [99]",
    "\n",
    "#",
    "é",
    "\u{0}",
    "true",
    "{}",
    "[1, 2",
];

fn mutate(rng: &mut StdRng, src: &str) -> String {
    let mut lines: Vec<String> = src.lines().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..6) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.random_range(0..lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Insert a token at a char boundary.
                let l = &mut lines[i];
                let cut =
                    l.char_indices().map(|(k, _)| k).nth(rng.random_range(0..=l.chars().count())).unwrap_or(l.len());
                l.insert_str(cut, TOKENS[rng.random_range(0..TOKENS.len())]);
            }
            4 => {
                // Cut the line short.
                let l = &mut lines[i];
                let keep =
                    l.char_indices().map(|(k, _)| k).nth(rng.random_range(0..=l.chars().count())).unwrap_or(l.len());
                l.truncate(keep);
            }
            _ => {
                // Replace the value after `=`.
                if let Some(eq) = lines[i].find('=') {
                    let t = TOKENS[rng.random_range(0..TOKENS.len())];
                    lines[i] = format!("{} {t}", &lines[i][..=eq]);
                }
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_scenarios_load_or_name_file_and_line_and_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut rng = StdRng::seed_from_u64(20_261_205);
    let (mut loaded, mut refused) = (0, 0);
    for path in shipped_scenarios(&dir).unwrap() {
        let src = std::fs::read_to_string(&path).unwrap();
        let fake = Path::new("/x/mutant.toml");
        for _ in 0..300 {
            let m = mutate(&mut rng, &src);
            let r = catch_unwind(AssertUnwindSafe(|| Scenario::parse(&m, fake, "mutant")))
                .unwrap_or_else(|_| panic!("parsing panicked on:\n{m}"));
            match r {
                Ok(s) => {
                    loaded += 1;
                    let again = s.to_toml();
                    if let Err(e) = Scenario::parse(&again, fake, "mutant") {
                        panic!(
                            "a scenario that loaded does not load again after writing: {e}\n--- from:\n{m}\n--- wrote:\n{again}"
                        );
                    }
                }
                Err(e) => {
                    refused += 1;
                    let msg = e.to_string();
                    assert!(msg.starts_with("/x/mutant.toml:"), "names the file: {msg}\n--- from:\n{m}");
                    assert!(e.at.is_some(), "names the line: {msg}\n--- from:\n{m}");
                }
            }
        }
    }
    assert!(loaded > 50 && refused > 50, "the mutations exercise both sides: {loaded} loaded, {refused} refused");
}

#[test]
fn mutated_history_lines_never_panic_and_errors_name_the_line() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/overlap-after-expiry.jsonl");
    let src = std::fs::read_to_string(fixture).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut refused = 0;
    for _ in 0..2_000 {
        let m = mutate(&mut rng, &src);
        let r = catch_unwind(AssertUnwindSafe(|| lockbench::record::read_history(m.as_bytes())))
            .unwrap_or_else(|_| panic!("reading panicked on:\n{m}"));
        if let Err(e) = r {
            refused += 1;
            assert!(e.to_string().starts_with("history line "), "{e}");
        } else if let Ok((_, events)) = r {
            // What reads must check without panicking too.
            let h =
                lockbench::record::History::merge(vec![events.into_iter().map(|(_, e)| e).collect()], 0, u64::MAX / 2);
            catch_unwind(AssertUnwindSafe(|| lockbench::check::check(&h)))
                .unwrap_or_else(|_| panic!("checking panicked on:\n{m}"));
        }
    }
    assert!(refused > 100, "{refused}");
}
