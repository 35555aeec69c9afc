//! Result folders are the user's: claiming one before a run, and replacing only
//! what lockbench wrote.
//!
//! A result folder carries [`MARKER`], which lists the files lockbench wrote there.
//! `--out` must name a folder that is absent, empty, or a result (a re-run replaces
//! it only with `--force`, and then only the files the marker lists: a notes file
//! beside them stays). A folder of results carries [`RESULTS_MARKER`]. Everything is
//! checked, and the folder claimed, before the run: its `<name>.lockbench-lock` is held with
//! `flock` (the kernel releases it on any death, so a killed run never blocks the
//! next), `<name>.partial` is created and a probe file written in it. The run's
//! files go into the `.partial` folder, which becomes the result at the end.
//!
//! This module never removes a folder recursively, and never removes a file whose
//! name lockbench does not write.

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The file that marks a result folder and lists what lockbench wrote in it.
pub const MARKER: &str = ".lockbench-result";
/// The file that marks a folder of result folders (`results/`, or `--out` with
/// several scenarios).
pub const RESULTS_MARKER: &str = ".lockbench-results";
const PROBE: &str = ".lockbench-probe";
/// Written into a `.partial` folder by a run that was aborted (a second signal)
/// before it wrote its result.
pub const INCOMPLETE: &str = "INCOMPLETE";

/// The `.partial` folders of the claims this process holds, for an abort that
/// exits without running destructors (see `run::signals`).
static CLAIMED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn claimed() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `.partial` folders of the claims this process holds now.
pub fn partial_dirs() -> Vec<PathBuf> {
    claimed().clone()
}

/// Is `name` one that lockbench writes in a result folder?
pub fn is_ours(name: &str) -> bool {
    matches!(
        name,
        "summary.json"
            | "summary.prev.json"
            | "history.jsonl"
            | "history.jsonl.zst"
            | "scenario.toml"
            | "report.html"
            | MARKER
    ) || (name.ends_with(".hlog") && !name.contains('/') && name.len() > 5)
}

/// What `--out` names today.
#[derive(Debug, PartialEq)]
enum State {
    Absent,
    Empty,
    /// A result folder: the files lockbench wrote there.
    Result(Vec<String>),
}

/// A result folder claimed for one run: locked, its `.partial` folder created and
/// writable. Dropped without [`Claim::commit`], it leaves the user's folder as it
/// was and removes its `.partial` folder if nothing was written there.
pub struct Claim {
    /// The final folder.
    pub dir: PathBuf,
    /// Where the run's files are written until the end.
    pub partial: PathBuf,
    _lock: Lock,
    /// Files of an earlier result at `dir` to replace (`--force`).
    replaces: Option<Vec<String>>,
    done: bool,
}

impl Claim {
    /// Claim `dir` given with `--out` for one scenario.
    pub fn out(dir: &Path, force: bool) -> Result<Claim> {
        refuse_cwd_or_ancestor(dir)?;
        let lock = lock_or_refuse(dir)?;
        let replaces = match state(dir)? {
            State::Absent => None,
            State::Empty => Some(Vec::new()),
            State::Result(files) if force => Some(files),
            State::Result(_) => bail!(
                "--out {}: holds an earlier result; --force replaces the files lockbench wrote there (and keeps \
                 everything else), or choose another folder",
                dir.display()
            ),
        };
        Self::with_partial(dir, lock, replaces)
    }

    /// Claim a new folder `<results>/<name>`, or `<name>-2`, `-3`, ... if that is
    /// taken (by an earlier run, a concurrent one, or a scenario of the same name).
    pub fn fresh(results: &Path, name: &str) -> Result<Claim> {
        fs::create_dir_all(results).with_context(|| format!("creating the results folder {}", results.display()))?;
        mark_results(results)?;
        for i in 1..10_000 {
            let dir = if i == 1 { results.join(name) } else { results.join(format!("{name}-{i}")) };
            if dir.exists() {
                continue;
            }
            let Ok(lock) = lock(&dir)? else { continue };
            // The atomic claim: whoever creates `.partial` first has the name.
            match fs::create_dir(partial_of(&dir)) {
                Ok(()) => {
                    let c = Claim { partial: partial_of(&dir), dir, _lock: lock, replaces: None, done: false };
                    claimed().push(c.partial.clone());
                    c.probe()?;
                    return Ok(c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", partial_of(&dir).display())),
            }
        }
        bail!("no free result folder name for {name} in {}", results.display())
    }

    fn with_partial(dir: &Path, lock: Lock, replaces: Option<Vec<String>>) -> Result<Claim> {
        let partial = partial_of(dir);
        match fs::create_dir(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // We hold the lock, so no run is writing there: an earlier run was
                // killed or failed. Take it over if it is lockbench's.
                match state(&partial)? {
                    State::Absent => bail!("{} vanished while claiming it", partial.display()),
                    State::Empty => {}
                    State::Result(files) => {
                        for f in files {
                            remove_ours(&partial.join(f))?;
                        }
                    }
                }
                // The note of an aborted run: this run is its replacement.
                let _ = fs::remove_file(partial.join(INCOMPLETE));
                eprintln!(
                    "note: taking over {}, left by an earlier run that did not finish (nothing holds its lock)",
                    partial.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("--out {}: cannot create {}", dir.display(), partial.display()));
            }
        }
        let c = Claim { dir: dir.to_owned(), partial, _lock: lock, replaces, done: false };
        claimed().push(c.partial.clone());
        c.probe()?;
        Ok(c)
    }

    /// Write, flush and remove a probe file, and the marker: the folder takes files.
    fn probe(&self) -> Result<()> {
        let p = self.partial.join(PROBE);
        let r = File::create(&p).and_then(|mut f| f.write_all(b"lockbench probe\n").and_then(|_| f.sync_all()));
        let _ = fs::remove_file(&p);
        r.with_context(|| format!("cannot write in {}", self.partial.display()))?;
        write_marker(&self.partial, &[])
    }

    /// Path of a file to write in this result.
    pub fn file(&self, name: &str) -> PathBuf {
        self.partial.join(name)
    }

    /// The run is written: make `.partial` the result. `written` are the files the
    /// run wrote in `.partial`.
    pub fn commit(mut self, written: &[String]) -> Result<PathBuf> {
        write_marker(&self.partial, written)?;
        match self.replaces.take() {
            None => fs::rename(&self.partial, &self.dir)
                .with_context(|| format!("renaming {} to {}", self.partial.display(), self.dir.display()))?,
            Some(old) => {
                fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
                for f in &old {
                    remove_ours(&self.dir.join(f))?;
                }
                for f in written.iter().map(String::as_str).chain([MARKER]) {
                    let (from, to) = (self.partial.join(f), self.dir.join(f));
                    fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
                }
                fs::remove_dir(&self.partial).with_context(|| format!("removing {}", self.partial.display()))?;
            }
        }
        self.done = true;
        Ok(self.dir.clone())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        claimed().retain(|p| p != &self.partial);
        if !self.done {
            // Nothing recorded was written: leave no trace. Otherwise keep what was
            // written (the error message names the folder).
            let only_marker = fs::read_dir(&self.partial)
                .map(|d| d.flatten().all(|e| e.file_name() == MARKER || e.file_name() == PROBE))
                .unwrap_or(false);
            if only_marker {
                let _ = fs::remove_file(self.partial.join(MARKER));
                let _ = fs::remove_dir(&self.partial);
            }
        }
    }
}

fn partial_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dir.with_file_name(name)
}

/// `.`, `..`, the current folder and its ancestors are never a result folder.
fn refuse_cwd_or_ancestor(dir: &Path) -> Result<()> {
    // Path::components() drops a trailing or inner `.`: look at the text as typed.
    let text = dir.to_string_lossy();
    let dotted = text.split('/').enumerate().any(|(i, seg)| seg == ".." || (seg == "." && i > 0));
    if dir.as_os_str().is_empty()
        || dotted
        || dir.file_name().is_none()
        || matches!(dir.components().next_back(), Some(Component::CurDir | Component::ParentDir))
    {
        bail!(
            "--out {}: not a folder name lockbench can use (`.`, `..` and `/` are refused, also inside a path)",
            dir.display()
        );
    }
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    if let Some(real) = resolve(dir)
        && cwd.starts_with(&real)
    {
        bail!("--out {}: is the current folder or one of its parents; choose a new or empty folder", dir.display());
    }
    Ok(())
}

/// `p` with symlinks and `..` resolved as far as it exists.
fn resolve(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() { p.to_owned() } else { std::env::current_dir().ok()?.join(p) };
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_owned();
    }
    let mut r = existing.canonicalize().ok()?;
    for c in rest.into_iter().rev() {
        r.push(c);
    }
    Some(r)
}

fn state(dir: &Path) -> Result<State> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Absent),
        Err(e) => return Err(e).with_context(|| format!("--out {}", dir.display())),
    };
    if !meta.is_dir() {
        bail!("--out {}: is a file, not a folder", dir.display());
    }
    let mut names = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        names.push(e.with_context(|| format!("reading {}", dir.display()))?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    if names.is_empty() {
        return Ok(State::Empty);
    }
    if names.iter().any(|n| n == MARKER) {
        let listed =
            fs::read_to_string(dir.join(MARKER)).with_context(|| format!("reading {}", dir.join(MARKER).display()))?;
        let files: Vec<String> = listed
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_owned)
            .filter(|n| is_ours(n))
            .collect();
        return Ok(State::Result(files.into_iter().chain([MARKER.to_owned()]).collect()));
    }
    // Written before the marker existed: only lockbench's names and a summary that
    // parses.
    let others: Vec<&String> = names.iter().filter(|n| !is_ours(n)).collect();
    if others.is_empty() && super::read_summary(dir).is_ok() {
        return Ok(State::Result(names));
    }
    let shown: Vec<&str> = others.iter().take(3).map(|s| s.as_str()).collect();
    bail!(
        "--out {}: holds files lockbench did not write ({}{}); choose a new or empty folder",
        dir.display(),
        shown.join(", "),
        if others.len() > 3 { ", ..." } else { "" }
    )
}

fn remove_ours(p: &Path) -> Result<()> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !is_ours(&name) {
        return Ok(());
    }
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => fs::remove_file(p).with_context(|| format!("removing {}", p.display())),
        _ => Ok(()),
    }
}

fn write_marker(dir: &Path, files: &[String]) -> Result<()> {
    let p = dir.join(MARKER);
    let mut text = String::from(
        "# lockbench result folder. The files lockbench wrote here, which `--force` replaces; anything else stays.\n",
    );
    for f in files {
        text.push_str(f);
        text.push('\n');
    }
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// Add `name` to the list in a result folder's marker (a file written after the
/// run, such as summary.prev.json), so that `--force` replaces it too.
pub fn note_written(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(MARKER);
    let Ok(text) = fs::read_to_string(&p) else { return Ok(()) };
    if text.lines().any(|l| l == name) {
        return Ok(());
    }
    let mut f = fs::OpenOptions::new().append(true).open(&p).with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{name}").with_context(|| format!("writing {}", p.display()))
}

/// Mark `dir` as a folder of results (so that `--out dir` with several scenarios
/// may write there again).
pub fn mark_results(dir: &Path) -> Result<()> {
    let p = dir.join(RESULTS_MARKER);
    if !p.exists() {
        fs::write(&p, "# lockbench results folder: one result folder per run.\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// `--out` with several scenarios: a folder that is absent, empty, or lockbench's
/// folder of results. Created and marked.
pub fn results_out(dir: &Path) -> Result<()> {
    refuse_cwd_or_ancestor(dir)?;
    if dir.exists() {
        if !dir.is_dir() {
            bail!("--out {}: is a file, not a folder", dir.display());
        }
        let empty = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_none();
        if !empty && !dir.join(RESULTS_MARKER).exists() {
            bail!(
                "--out {}: with several scenarios --out is a folder of results, and this one holds files lockbench \
                 did not write; choose a new or empty folder",
                dir.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create it", dir.display()))?;
    mark_results(dir)
}

/// `flock` held on `<dir>.lockbench-lock`; unlinked and released on drop.
struct Lock {
    file: File,
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlink while holding the lock; a run that opened the old file checks the
        // inode after locking and starts again (see `lock`).
        let _ = fs::remove_file(&self.path);
        let _ = &self.file;
    }
}

/// The suffix of a result folder's lock file: a name no other tool uses (a folder
/// called `Cargo` must not touch `Cargo.lock`).
pub const LOCK_SUFFIX: &str = ".lockbench-lock";

/// Take `flock` on `<dir>.lockbench-lock`: one run per folder. `Ok(Err(pid))` when
/// another run holds it. A file of that name that is not lockbench's (anything but
/// a pid, or not a plain file) is refused and left alone.
fn lock(dir: &Path) -> Result<std::result::Result<Lock, String>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(LOCK_SUFFIX);
    let path = dir.with_file_name(name);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("--out {}: cannot create {}", dir.display(), parent.display()))?;
    }
    loop {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // Never through a link: the lock is a file of lockbench's own.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("--out {}: cannot create its lock file {}", dir.display(), path.display()))?;
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            bail!("--out {}: {} is not a plain file: not touching it", dir.display(), path.display());
        }
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            return Ok(Err(holder.trim().to_owned()));
        }
        // The holder before us may have unlinked the file after we opened it: then
        // the lock is on a file nobody else will find. Start again.
        use std::os::unix::fs::MetadataExt;
        let same = match (f.metadata(), fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let mut held = String::new();
        let _ = f.read_to_string(&mut held);
        if !held.trim().chars().all(|c| c.is_ascii_digit()) {
            bail!(
                "--out {}: {} exists and is not a lockbench lock file: not touching it (choose another --out)",
                dir.display(),
                path.display()
            );
        }
        let lock = Lock { file: f, path };
        let mut f = &lock.file;
        f.set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| write!(f, "{}", std::process::id()))
            .with_context(|| format!("--out {}: cannot write its lock file {}", dir.display(), lock.path.display()))?;
        return Ok(Ok(lock));
    }
}

/// [`lock`], refusing when another run holds it.
fn lock_or_refuse(dir: &Path) -> Result<Lock> {
    match lock(dir)? {
        Ok(l) => Ok(l),
        Err(pid) => bail!(
            "{}: another lockbench run (pid {pid}) is writing there; wait for it or choose another folder",
            dir.display()
        ),
    }
}

/// A finished result folder held while lockbench rewrites files in it (`check`):
/// the same lock a run takes, so that two never write one folder at once.
pub struct Held(#[allow(dead_code)] Lock);

pub fn hold(dir: &Path) -> Result<Held> {
    lock_or_refuse(dir).map(Held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_of_other_files_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("thesis");
        fs::create_dir_all(out.join("src")).unwrap();
        fs::write(out.join("src/a.rs"), "fn main() {}").unwrap();
        let err = Claim::out(&out, true).err().unwrap().to_string();
        assert!(err.contains("did not write"), "{err}");
        assert!(out.join("src/a.rs").exists());
        assert!(!partial_of(&out).exists() && !d.path().join("thesis.lockbench-lock").exists());
    }

    #[test]
    fn force_replaces_only_what_lockbench_wrote() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        let c = Claim::out(&out, false).unwrap();
        fs::write(c.file("summary.json"), "{}").unwrap();
        fs::write(c.file("a.hlog"), "x").unwrap();
        c.commit(&["summary.json".into(), "a.hlog".into()]).unwrap();
        fs::write(out.join("notes.txt"), "mine").unwrap();
        assert!(Claim::out(&out, false).is_err(), "a result is replaced only with --force");
        let c = Claim::out(&out, true).unwrap();
        fs::write(c.file("summary.json"), "{\"new\":1}").unwrap();
        c.commit(&["summary.json".into()]).unwrap();
        assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        assert_eq!(fs::read_to_string(out.join("summary.json")).unwrap(), "{\"new\":1}");
        assert!(!out.join("a.hlog").exists(), "the old run's file is replaced");
        assert!(!partial_of(&out).exists());
    }

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        let first = Claim::out(&out, false).unwrap();
        let err = Claim::out(&out, false).err().unwrap().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        assert!(!partial_of(&out).exists(), "an unused claim leaves nothing");
        let _again = Claim::out(&out, false).unwrap();
    }

    #[test]
    fn fresh_names_never_collide() {
        let d = tempfile::tempdir().unwrap();
        let a = Claim::fresh(d.path(), "x").unwrap();
        let b = Claim::fresh(d.path(), "x").unwrap();
        assert_ne!(a.dir, b.dir);
        assert!(b.dir.ends_with("x-2"));
    }

    #[test]
    fn claims_are_listed_while_held_and_an_aborted_runs_note_goes_with_the_takeover() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        let c = Claim::out(&out, false).unwrap();
        assert!(partial_dirs().contains(&c.partial));
        // As the abort path leaves it (it exits without dropping the claim).
        fs::write(c.file(INCOMPLETE), "aborted").unwrap();
        let partial = c.partial.clone();
        drop(c);
        assert!(!partial_dirs().contains(&partial));
        assert!(partial.join(INCOMPLETE).exists(), "a marked .partial folder stays");
        let c = Claim::out(&out, false).unwrap();
        assert!(!c.file(INCOMPLETE).exists(), "the next run into the folder removes the note");
    }

    #[test]
    fn is_ours_knows_lockbench_names_only() {
        assert!(is_ours("redis.hlog") && is_ours("summary.json") && is_ours(MARKER));
        assert!(!is_ours("notes.txt") && !is_ours(".hlog") && !is_ours("../x.hlog"));
    }

    #[test]
    fn a_file_that_only_shares_the_lock_name_is_never_touched() {
        let d = tempfile::tempdir().unwrap();
        // `--out Cargo` beside a Cargo.lock: the lock is Cargo.lockbench-lock.
        fs::write(d.path().join("Cargo.lock"), "[[package]]\n").unwrap();
        let c = Claim::out(&d.path().join("Cargo"), false).unwrap();
        drop(c);
        assert_eq!(fs::read_to_string(d.path().join("Cargo.lock")).unwrap(), "[[package]]\n");
        // A user's file under lockbench's lock name is refused, not emptied.
        fs::write(d.path().join("x.lockbench-lock"), "my notes").unwrap();
        let err = Claim::out(&d.path().join("x"), false).err().unwrap().to_string();
        assert!(err.contains("not a lockbench lock file"), "{err}");
        assert_eq!(fs::read_to_string(d.path().join("x.lockbench-lock")).unwrap(), "my notes");
    }
}
