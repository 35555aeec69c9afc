//! lockbench's folders in the system temp folder: making them, removing them on
//! every exit path, and removing the ones that earlier runs left behind.
//!
//! Two forms of name, both directly in `std::env::temp_dir()`:
//! `lockbench-<pid>-<tag>` (a run's scratch folder) and
//! `lockbench-<kind>-<pid>-<port>` (a local server's data). Each folder made here
//! holds [`OWNER_LOCK`], locked with `flock` for as long as the folder's
//! [`TempDir`] lives (the kernel drops the lock when the process dies, however it
//! dies). Every folder made here is also registered, so that an exit that skips
//! destructors (a second signal, a panic) can still remove them with
//! [`remove_all`]. [`remove_stale`] removes what earlier runs left (a SIGKILL
//! leaves everything): a folder goes only when its owner lock is free and the pid
//! in its name is dead, belongs to a process that is not lockbench, or belongs to
//! a process that started after the folder was last changed (a reused pid), and
//! no process has a file open in it.
//!
//! This module must never remove anything outside the system temp folder, nor
//! anything there that is not a folder with one of the two names above, nor a
//! folder of another user, nor a folder whose owner may still be alive (when in
//! doubt, a folder stays).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ServerKind;

/// The file in each folder that its owner holds locked.
pub const OWNER_LOCK: &str = ".lockbench-owner";

/// Folders made by this process and not yet removed.
static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn made() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    MADE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A folder of ours in the temp folder, removed (with everything in it) on drop.
pub struct TempDir {
    path: PathBuf,
    _owner: File,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        made().retain(|p| p != &self.path);
    }
}

/// A scratch folder `lockbench-<pid>-<tag>` (characters other than letters,
/// digits, `-`, `_` and `.` in `tag` become `_`).
pub fn scratch(tag: &str) -> io::Result<TempDir> {
    let tag: String =
        tag.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' }).collect();
    make_in(&std::env::temp_dir(), &format!("lockbench-{}-{tag}", std::process::id()))
}

/// A server data folder `lockbench-<kind>-<pid>-<port>`.
pub fn server(kind: ServerKind, port: u16) -> io::Result<TempDir> {
    make_in(&std::env::temp_dir(), &format!("lockbench-{}-{}-{port}", kind.name(), std::process::id()))
}

fn make_in(dir: &Path, name: &str) -> io::Result<TempDir> {
    // A new folder, never one that exists already (a leftover of an earlier
    // process with the same pid, or one planted by someone else in a shared temp
    // folder): the next free suffix instead.
    let mut path = dir.join(name);
    let mut n = 1;
    loop {
        match std::fs::create_dir(&path) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => {
                n += 1;
                path = dir.join(format!("{name}-{n}"));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    made().push(path.clone());
    let lock = path.join(OWNER_LOCK);
    let owner = File::create(&lock).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", lock.display())));
    let owner = match owner {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&path);
            made().retain(|p| p != &path);
            return Err(e);
        }
    };
    // SAFETY: flock on a descriptor we own. It cannot block: the file is new.
    unsafe { libc::flock(owner.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok(TempDir { path, _owner: owner })
}

/// Remove every folder this process made and still has. For exits that skip
/// destructors; stop the servers using them first.
pub fn remove_all() {
    remove_where(|_| true);
}

fn remove_where(f: impl Fn(&Path) -> bool) {
    let dirs: Vec<PathBuf> = {
        let mut m = made();
        let (take, keep) = std::mem::take(&mut *m).into_iter().partition(|p| f(p));
        *m = keep;
        take
    };
    for d in dirs {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// The pid in a folder name of ours; `None` for any other name.
fn owner_pid(name: &str) -> Option<u32> {
    let pid = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|p| *p > 0)
    };
    let rest = name.strip_prefix("lockbench-")?;
    let mut parts = rest.split('-');
    let first = parts.next()?;
    if let Some(p) = pid(first) {
        // A scratch folder: a tag follows.
        return parts.next().filter(|t| !t.is_empty()).map(|_| p);
    }
    if !ServerKind::ALL.iter().any(|k| k.name() == first) {
        return None;
    }
    let p = pid(parts.next()?)?;
    parts.next()?.parse::<u16>().ok()?;
    parts.next().is_none().then_some(p)
}

/// Remove the folders that earlier runs left in the system temp folder; returns
/// what was removed and why.
pub fn remove_stale() -> Vec<(PathBuf, String)> {
    remove_stale_in(&std::env::temp_dir())
}

/// A folder younger than this, whose pid is alive, is never taken for stale.
const YOUNG: std::time::Duration = std::time::Duration::from_secs(60);

/// [`remove_stale`] in `dir` (the system temp folder, or a test's folder).
pub fn remove_stale_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut gone = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return gone };
    let me = std::process::id();
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else { continue };
        let path = e.path();
        // A real folder (not a symlink) of this user's, not this process's.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() || meta.uid() != uid || pid == me || lock_held(&path) {
            continue;
        }
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        // A live owner's folder made a moment ago may not hold its owner lock yet
        // (made, then locked): leave young folders of live pids alone.
        let young = SystemTime::now().duration_since(mtime).map_or(true, |age| age < YOUNG);
        if young && Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Some(why) = owner_gone(pid, mtime) else { continue };
        // Whoever made it, a folder with a file open in it is in use (a folder of a
        // build without the owner lock, whose server is running).
        if in_use(&path) {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            gone.push((path, why));
        }
    }
    gone
}

/// Has any process a file open, or its working folder, inside `dir`? Processes
/// we cannot look into count as not using it.
fn in_use(dir: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else { return true };
    let inside = |p: &Path| p.starts_with(dir);
    for p in procs.flatten() {
        if !p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if std::fs::read_link(p.path().join("cwd")).is_ok_and(|c| inside(&c)) {
            return true;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| inside(&t))) {
            return true;
        }
    }
    false
}

/// Does a live process hold the folder's owner lock?
fn lock_held(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(OWNER_LOCK)) else { return false };
    // SAFETY: flock on a descriptor we own; a lock we get is released when `f`
    // closes at the end of this function.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Why the folder's owner `pid` is provably not running any more, or `None` when
/// it may be (then the folder stays).
fn owner_gone(pid: u32, mtime: SystemTime) -> Option<String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return Some(format!("pid {pid} is not running"));
    }
    match std::fs::read_link(proc_dir.join("exe")) {
        Ok(exe) if !is_lockbench(&exe) => {
            return Some(format!("pid {pid} is now {}, not lockbench", exe.display()));
        }
        Ok(_) => {}
        // No executable: a kernel thread or a zombie, neither of which uses a folder.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(format!("pid {pid} is not a running program"));
        }
        // Not ours to read (another user namespace, e.g. a container's pid 1): its
        // name says what it runs; lockbench never renames its main thread.
        Err(_) => {
            let comm = std::fs::read_to_string(proc_dir.join("comm")).ok()?;
            let comm = comm.trim();
            if comm != "lockbench" {
                return Some(format!("pid {pid} is now {comm}, not lockbench"));
            }
        }
    }
    // A lockbench: the owner only if it started before the folder was last changed.
    if started_after(pid, mtime)? {
        return Some(format!("pid {pid} is a later lockbench (the pid was reused)"));
    }
    None
}

fn strip_deleted(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
}

/// Is this executable lockbench: ours, or another build of it?
fn is_lockbench(exe: &Path) -> bool {
    let exe = strip_deleted(exe);
    let ours = std::fs::read_link("/proc/self/exe").map(|p| strip_deleted(&p)).ok();
    ours.as_deref() == Some(exe.as_path()) || exe.file_name().is_some_and(|n| n == "lockbench")
}

/// Did `pid` start after `t` (with two seconds for the clock's granularity)?
/// `None` when its start time cannot be read.
fn started_after(pid: u32, t: SystemTime) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks after boot); fields after `comm` start at 3.
    let ticks: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let started = UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_secs_f64(ticks as f64 / hz as f64);
    Some(started > t + Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process can have: pids are below pid_max.
    /// Set `p`'s modification time `secs` seconds back.
    fn age(p: &Path, secs: i64) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let t = libc::timeval { tv_sec: now - secs, tv_usec: 0 };
        // SAFETY: utimes on a path we made, with two valid timevals.
        assert_eq!(unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) }, 0);
    }

    fn dead_pid() -> u32 {
        std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap()
    }

    #[test]
    fn names_of_ours_are_recognised_and_nothing_else() {
        assert_eq!(owner_pid("lockbench-123-contention-storm-sqlite"), Some(123));
        assert_eq!(owner_pid("lockbench-redis-123-6379"), Some(123));
        assert_eq!(owner_pid("lockbench-cassandra_v1-9-1"), Some(9));
        for other in [
            "lockbench-123",
            "lockbench-123-",
            "lockbench-redis-123",
            "lockbench-redis-123-6379-x",
            "lockbench-mysql-123-6379",
            "lockbench-+123-x",
            "lockbench-0-x",
            "lockbench-spawner",
            "my-lockbench-123-x",
            "lockbench-notes",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_folder_named_after_a_dead_pid_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let pid = dead_pid();
        let scratch = d.path().join(format!("lockbench-{pid}-x"));
        let server = d.path().join(format!("lockbench-redis-{pid}-6379"));
        std::fs::create_dir_all(scratch.join("sub")).unwrap();
        std::fs::write(scratch.join("sub/db.sqlite"), "x").unwrap();
        std::fs::create_dir(&server).unwrap();
        // Not ours: a file with our name form, and a folder of another form.
        let file = d.path().join(format!("lockbench-{pid}-file"));
        std::fs::write(&file, "x").unwrap();
        let other = d.path().join(format!("lockbench-notes-{pid}"));
        std::fs::create_dir(&other).unwrap();
        let gone = remove_stale_in(d.path());
        assert!(!scratch.exists() && !server.exists(), "left: {gone:?}");
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert!(gone.iter().all(|(_, why)| why.contains("not running")), "{gone:?}");
        assert!(file.exists() && other.exists(), "removed something that is not a lockbench folder");
    }

    #[test]
    fn a_folder_named_after_our_own_pid_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let ours = d.path().join(format!("lockbench-{}-x", std::process::id()));
        std::fs::create_dir(&ours).unwrap();
        let gone = remove_stale_in(d.path());
        assert!(ours.exists(), "{gone:?}");
        assert!(gone.is_empty());
    }

    #[test]
    fn a_folder_named_after_a_live_process_that_is_not_lockbench_is_removed() {
        let exe = std::fs::read_link("/proc/1/exe").ok();
        assert!(exe.as_deref().is_none_or(|e| !is_lockbench(e)), "pid 1 is lockbench here: {exe:?}");
        let comm = std::fs::read_to_string("/proc/1/comm").unwrap();
        assert_ne!(comm.trim(), "lockbench", "pid 1 is lockbench here");
        let d = tempfile::tempdir().unwrap();
        let theirs = d.path().join("lockbench-1-x");
        std::fs::create_dir(&theirs).unwrap();
        // Made a moment ago: its owner may be about to lock it.
        assert!(remove_stale_in(d.path()).is_empty() && theirs.exists(), "a young folder of a live pid stays");
        age(&theirs, 120);
        let gone = remove_stale_in(d.path());
        assert!(!theirs.exists());
        assert_eq!(gone.len(), 1);
        assert!(gone[0].1.starts_with("pid 1 is "), "{gone:?}");
    }

    #[test]
    fn a_folder_with_a_file_open_in_it_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let busy = d.path().join(format!("lockbench-{}-busy", dead_pid()));
        std::fs::create_dir(&busy).unwrap();
        let f = File::create(busy.join("db.sqlite")).unwrap();
        let gone = remove_stale_in(d.path());
        assert!(busy.exists(), "{gone:?}");
        drop(f);
        remove_stale_in(d.path());
        assert!(!busy.exists());
    }

    #[test]
    fn a_folder_whose_owner_lock_is_held_is_kept_whatever_its_name_says() {
        let d = tempfile::tempdir().unwrap();
        let held = make_in(d.path(), &format!("lockbench-{}-held", dead_pid())).unwrap();
        let gone = remove_stale_in(d.path());
        assert!(held.path().exists(), "{gone:?}");
        let path = held.path().to_owned();
        drop(held);
        assert!(!path.exists(), "a TempDir is removed on drop");
    }

    #[test]
    fn remove_all_removes_what_this_process_made() {
        let d = tempfile::tempdir().unwrap();
        let t = make_in(d.path(), "lockbench-1-all").unwrap();
        let path = t.path().to_owned();
        std::mem::forget(t); // as an exit that skips destructors
        assert!(made().contains(&path));
        // remove_all() with a filter: other tests here make folders at the same time.
        remove_where(|p| p == path);
        assert!(!path.exists());
    }

    #[test]
    fn a_process_started_after_the_folder_changed_is_not_its_owner() {
        let me = std::process::id();
        assert_eq!(started_after(me, UNIX_EPOCH), Some(true));
        assert_eq!(started_after(me, SystemTime::now()), Some(false));
    }
}
