//! The Chromium agentd launches, as a child process that dies with agentd — even by kill -9 —
//! and a record of it in the data directory, so that the next start kills one that did not.
//!
//! chromiumoxide's `Browser::launch` spawns the browser itself and offers no hook into the
//! child before `exec`, where the parent-death signal must be armed. So the browser is spawned
//! here, with the command line chromiumoxide 0.9.1 built for it (its default switches, then
//! the pool's), and the pool attaches to it with `Browser::connect_with_config` at the
//! DevTools URL it prints on stderr.
//!
//! Three things end it with agentd: on Linux, `PR_SET_PDEATHSIG` (SIGKILL when agentd dies,
//! however); the browser leads a process group of its own, which a graceful close or a drop
//! kills whole; and [`kill_leftover_browser`], run at the next start over the same data
//! directory, kills whatever a record names and is still that browser (where no parent-death
//! signal exists, or should one have been missed).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::BrowserError;

/// The record's name in its directory.
const RECORD_FILE: &str = "browser.pid";

/// The prefix of every launched browser's profile folder (a fresh temporary one per launch):
/// a leftover folder is removed only if its name has it.
pub(crate) const PROFILE_PREFIX: &str = "agentd-chromium-";

/// Switches chromiumoxide 0.9.1 gives every browser it launches (`DEFAULT_ARGS`, after
/// puppeteer's), kept so that the browser runs as it did when chromiumoxide launched it.
const CHROMIUMOXIDE_DEFAULTS: [(&str, &[&str]); 24] = [
    ("disable-background-networking", &[]),
    ("enable-features", &["NetworkService", "NetworkServiceInProcess"]),
    ("disable-background-timer-throttling", &[]),
    ("disable-backgrounding-occluded-windows", &[]),
    ("disable-breakpad", &[]),
    ("disable-client-side-phishing-detection", &[]),
    ("disable-component-extensions-with-background-pages", &[]),
    ("disable-default-apps", &[]),
    ("disable-dev-shm-usage", &[]),
    ("disable-features", &["TranslateUI"]),
    ("disable-hang-monitor", &[]),
    ("disable-ipc-flooding-protection", &[]),
    ("disable-popup-blocking", &[]),
    ("disable-prompt-on-repost", &[]),
    ("disable-renderer-backgrounding", &[]),
    ("disable-sync", &[]),
    ("force-color-profile", &["srgb"]),
    ("metrics-recording-only", &[]),
    ("no-first-run", &[]),
    ("enable-automation", &[]),
    ("password-store", &["basic"]),
    ("use-mock-keychain", &[]),
    ("enable-blink-features", &["IdleDetection"]),
    ("lang", &["en_US"]),
];

/// The browser's command line (without the executable): chromiumoxide's defaults, then
/// `switches` (name without dashes, values; a name given twice has its values joined, as
/// chromiumoxide's argument builder does), then what chromiumoxide added for a launch without
/// sandbox or extensions on an ephemeral DevTools port: the profile folder and, unless
/// `headed`, the old headless mode.
pub(crate) fn command_line(profile: &Path, headed: bool, switches: &[(&str, Vec<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, values: &[String]| match merged.iter_mut().find(|(n, _)| n == name) {
        Some((_, existing)) => existing.extend_from_slice(values),
        None => merged.push((name.to_owned(), values.to_vec())),
    };
    for (name, values) in CHROMIUMOXIDE_DEFAULTS {
        add(name, &values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>());
    }
    for (name, values) in switches {
        add(name, values);
    }
    add("remote-debugging-port", &["0".to_owned()]);
    add("disable-extensions", &[]);
    add("user-data-dir", &[profile.display().to_string()]);
    add("no-sandbox", &[]);
    add("disable-setuid-sandbox", &[]);
    if !headed {
        for name in ["headless", "hide-scrollbars", "mute-audio"] {
            add(name, &[]);
        }
    }
    merged
        .into_iter()
        .map(|(name, values)| if values.is_empty() { format!("--{name}") } else { format!("--{name}={}", values.join(",")) })
        .collect()
}

/// The path to execute, as chromiumoxide chose it: canonical (symbolic links resolved),
/// except for a snap, whose launcher must be started by its own name.
pub(crate) fn executable_path(executable: &Path) -> io::Result<PathBuf> {
    let canonical = std::fs::canonicalize(executable)?;
    if canonical.to_string_lossy().ends_with("/snap") {
        return std::path::absolute(executable);
    }
    Ok(canonical)
}

/// A launched browser process: killed (with its process group) when dropped, its record
/// removed.
pub(crate) struct ChromiumProcess {
    child: tokio::process::Child,
    pid: u32,
    /// The DevTools WebSocket URL it printed.
    pub devtools_url: String,
    /// The record naming it, when one was asked for.
    record: Option<PathBuf>,
}

impl ChromiumProcess {
    /// Starts `executable` with `args` and waits (at most `timeout`) for it to print its
    /// DevTools URL; records it in `record_dir` (with `profile`, its profile folder) when one
    /// is given.
    pub async fn spawn(
        executable: &Path,
        args: Vec<String>,
        timeout: Duration,
        record_dir: Option<&Path>,
        profile: &Path,
    ) -> Result<ChromiumProcess, BrowserError> {
        let mut command = tokio::process::Command::new(executable);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        {
            // Its own process group, which the browser's zygote, renderers and helpers join:
            // closing it kills them all in one signal, and a Ctrl-C at agentd's terminal
            // reaches agentd only (which closes the browser itself).
            command.process_group(0);
        }
        #[cfg(target_os = "linux")]
        {
            let agentd = std::process::id();
            // SAFETY: runs in the forked child before exec, where only async-signal-safe calls
            // are allowed: prctl and getppid are plain system calls, and the errors are built
            // from an errno without allocating.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // agentd died between the fork and the prctl: the signal will never come.
                    if libc::getppid() as u32 != agentd {
                        return Err(io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let child = spawn_from_lasting_thread(command)
            .await
            .map_err(|e| BrowserError::Launch(format!("{}: {e}", executable.display())))?;
        let Some(pid) = child.id() else {
            return Err(BrowserError::Launch(format!("{} exited at once", executable.display())));
        };
        // Recorded from the start; on any failure below, dropping it kills its group.
        let mut process = ChromiumProcess { child, pid, devtools_url: String::new(), record: None };
        if let Some(dir) = record_dir {
            let path = dir.join(RECORD_FILE);
            match Record::of(pid, profile).write(&path) {
                Ok(()) => process.record = Some(path),
                Err(error) => tracing::warn!(%error, path = %path.display(), "cannot record the browser's PID; a crash may leave it running"),
            }
        }
        process.devtools_url = match tokio::time::timeout(timeout, devtools_url(&mut process.child)).await {
            Ok(Ok(url)) => url,
            Ok(Err(error)) => return Err(BrowserError::Launch(format!("{}: {error}", executable.display()))),
            Err(_) => {
                return Err(BrowserError::Launch(format!(
                    "{} did not print its DevTools address within {timeout:?}",
                    executable.display()
                )));
            }
        };
        Ok(process)
    }

    /// Waits up to `grace` for the browser to exit (it was asked to close), then kills what is
    /// left of its process group; removes its record.
    pub async fn stop(&mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!(pid = self.pid, "the browser did not exit when closed; killing it");
        }
        self.kill_group();
        let _ = tokio::time::timeout(grace, self.child.wait()).await;
        self.remove_record();
    }

    /// SIGKILL to the browser's process group while its leader is still unreaped (after
    /// that, the group's id could name someone else's group).
    fn kill_group(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            #[cfg(unix)]
            // SAFETY: a plain system call on a process group this process created.
            unsafe {
                libc::killpg(self.pid as libc::pid_t, libc::SIGKILL);
            }
            #[cfg(not(unix))]
            let _ = self.child.start_kill();
        }
    }

    fn remove_record(&mut self) {
        if let Some(path) = self.record.take() {
            // Only while it still names this browser: a relaunch may have recorded the next.
            if std::fs::read_to_string(&path).ok().and_then(|t| Record::parse(&t)).is_some_and(|r| r.pid == self.pid) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.kill_group();
        self.remove_record();
    }
}

/// Reads the browser's stderr until it prints `DevTools listening on ws://…/devtools/browser/…`;
/// an error with what it printed if it exits first.
async fn devtools_url(child: &mut tokio::process::Child) -> io::Result<String> {
    let Some(stderr) = child.stderr.take() else {
        return Err(io::Error::other("no stderr to read the DevTools address from"));
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut printed = String::new();
    let exited = |status: std::process::ExitStatus, printed: &str| io::Error::other(format!("exited ({status}) before it was ready: {}", printed.trim()));
    loop {
        // Its exit is watched as well as its stderr: a child of it may hold the pipe open.
        let line = tokio::select! {
            line = lines.next_line() => Some(line?),
            _ = child.wait() => None,
        };
        let Some(Some(line)) = line else {
            // What it printed just before exiting may still be in the pipe (bounded: a child
            // of it may hold the pipe open).
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if printed.len() < 4096 {
                        printed.push_str(&line);
                        printed.push('\n');
                    }
                }
            })
            .await;
            return Err(exited(child.wait().await?, &printed));
        };
        if let Some((_, url)) = line.rsplit_once("listening on ")
            && url.starts_with("ws")
            && url.contains("devtools/browser")
        {
            // The rest of stderr is not read: as with chromiumoxide, the pipe closes.
            return Ok(url.trim().to_owned());
        }
        // What it said before failing, for the error (bounded).
        if printed.len() < 4096 {
            printed.push_str(&line);
            printed.push('\n');
        }
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// The thread every browser is forked from. `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked the child ends, not when the process does: a tokio worker can end while agentd runs
/// on (`block_in_place` hands its role to a new thread; a runtime built for one test ends with
/// the test), and blocking-pool threads retire after 10 s idle — either would kill a browser
/// its sessions still use. This thread is started once, never returns, and its channel is
/// never closed, so the signal comes when the process dies and not before.
static SPAWNER: Mutex<Option<mpsc::Sender<SpawnJob>>> = Mutex::new(None);

/// Spawns `command` on the [`SPAWNER`] thread, inside the caller's runtime (so the child is
/// reaped and its pipes are driven as if spawned here).
async fn spawn_from_lasting_thread(mut command: tokio::process::Command) -> io::Result<tokio::process::Child> {
    let runtime = tokio::runtime::Handle::current();
    let (reply, spawned) = tokio::sync::oneshot::channel();
    let job: SpawnJob = Box::new(move || {
        let _inside = runtime.enter();
        let _ = reply.send(command.spawn());
    });
    {
        let mut spawner = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
        let sender = match spawner.as_ref() {
            Some(sender) => sender.clone(),
            None => {
                let (sender, jobs) = mpsc::channel::<SpawnJob>();
                std::thread::Builder::new().name("browser-spawner".into()).spawn(move || {
                    for job in jobs {
                        job();
                    }
                })?;
                spawner.insert(sender).clone()
            }
        };
        if let Err(mpsc::SendError(_)) = sender.send(job) {
            *spawner = None;
            return Err(io::Error::other("the browser spawner thread is gone"));
        }
    }
    spawned.await.map_err(|_| io::Error::other("the browser spawner thread is gone"))?
}

/// What a record says: the browser's PID, when it started (so that a PID reused since is not
/// taken for it), and its profile folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    pid: u32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat`); None where unknown.
    start: Option<u64>,
    profile: PathBuf,
}

impl Record {
    fn of(pid: u32, profile: &Path) -> Record {
        Record { pid, start: start_time(pid), profile: profile.to_path_buf() }
    }

    fn parse(text: &str) -> Option<Record> {
        let mut pid = None;
        let mut start = None;
        let mut profile = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => pid = v.parse().ok(),
                Some(("start", v)) => start = v.parse().ok(),
                Some(("profile", v)) => profile = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        Some(Record { pid: pid?, start, profile: profile? })
    }

    /// Written whole under a temporary name, then renamed: a crash leaves no half record.
    fn write(&self, path: &Path) -> io::Result<()> {
        let mut text = format!("pid {}\n", self.pid);
        if let Some(start) = self.start {
            text.push_str(&format!("start {start}\n"));
        }
        text.push_str(&format!("profile {}\n", self.profile.display()));
        let temp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, path)
    }
}

/// Kills the browser a previous agentd over `dir` recorded and left running (a crash
/// where no parent-death signal exists or came), with every process of its group, and removes
/// its profile folder and the record. Call it only while holding `dir` (the data directory's
/// lock): the record of a running server names its live browser.
pub fn kill_leftover_browser(dir: &Path) {
    let path = dir.join(RECORD_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read the record of a previous browser");
            return;
        }
    };
    match Record::parse(&text) {
        Some(record) => {
            let killed = kill_recorded(&record);
            if killed > 0 {
                tracing::warn!(pid = record.pid, processes = killed, "killed a browser a previous agentd left running");
            }
            let leftover_profile = record.profile.file_name().is_some_and(|n| n.to_string_lossy().starts_with(PROFILE_PREFIX));
            if leftover_profile && let Err(error) = std::fs::remove_dir_all(&record.profile) && error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(%error, profile = %record.profile.display(), "cannot remove a previous browser's profile folder");
            }
        }
        None => tracing::warn!(path = %path.display(), "ignoring an unreadable browser record"),
    }
    let _ = std::fs::remove_file(&path);
}

/// SIGKILL to every process of the recorded browser still alive: each process of its group
/// (the browser leads one; its zygotes, renderers and helpers stay in it) whose command line
/// names the recorded profile folder — a fresh, randomly named one per launch, which Chromium
/// passes to every process it starts — and that started no earlier than the browser. A PID or
/// group id reused since names processes without that folder: they are left alone. How many
/// processes were signalled.
#[cfg(target_os = "linux")]
fn kill_recorded(record: &Record) -> usize {
    let marker = format!("--user-data-dir={}", record.profile.display());
    let mut killed = 0;
    for (pid, stat) in processes() {
        let ours = stat.group == record.pid
            && stat.state != 'Z'
            && record.start.is_none_or(|start| stat.start >= start)
            && command_line_of(pid).contains(&marker);
        // SAFETY: a plain system call.
        if ours && unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
            killed += 1;
        }
    }
    killed
}

/// A process's arguments (`/proc/<pid>/cmdline`); empty when it is gone or unreadable.
#[cfg(target_os = "linux")]
fn command_line_of(pid: u32) -> Vec<String> {
    let Ok(bytes) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return Vec::new() };
    bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

#[cfg(not(target_os = "linux"))]
fn kill_recorded(_record: &Record) -> usize {
    0
}

/// What `/proc/<pid>/stat` says of a process.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Stat {
    state: char,
    group: u32,
    start: u64,
}

#[cfg(target_os = "linux")]
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields 3 (state), 5 (process group) and 22 (start time) of a `/proc/<pid>/stat` line; the
/// command name (field 2) is skipped by its last `)`, since it may hold spaces and parentheses.
#[cfg(target_os = "linux")]
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

#[cfg(target_os = "linux")]
fn processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

#[cfg(target_os = "linux")]
fn start_time(pid: u32) -> Option<u64> {
    Some(stat(pid)?.start)
}

#[cfg(not(target_os = "linux"))]
fn start_time(_pid: u32) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_needs_a_pid_and_a_profile() {
        let record = Record { pid: 42, start: Some(7), profile: PathBuf::from("/tmp/agentd-chromium-x y") };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        record.write(&path).unwrap();
        assert_eq!(Record::parse(&std::fs::read_to_string(&path).unwrap()), Some(record));
        assert_eq!(Record::parse("pid 42\n"), None);
        assert_eq!(Record::parse("profile /tmp/p\n"), None);
        assert_eq!(Record::parse("pid 42\nprofile /tmp/p\n").unwrap().start, None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "1234 (a (b) c) S 1 1200 1200 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 987654 1000 50 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.state, stat.group, stat.start), ('S', 1200, 987654));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn switches_given_twice_are_joined_and_the_profile_and_headless_mode_are_added() {
        let profile = Path::new("/tmp/agentd-chromium-test");
        let switches = vec![("disable-features", vec!["A".to_owned(), "B".to_owned()]), ("proxy-server", vec!["http://127.0.0.1:9".to_owned()])];
        let line = command_line(profile, false, &switches);
        assert!(line.contains(&"--disable-features=TranslateUI,A,B".to_owned()), "{line:?}");
        assert!(line.contains(&"--proxy-server=http://127.0.0.1:9".to_owned()), "{line:?}");
        assert!(line.contains(&"--user-data-dir=/tmp/agentd-chromium-test".to_owned()), "{line:?}");
        assert!(line.contains(&"--headless".to_owned()) && line.contains(&"--remote-debugging-port=0".to_owned()), "{line:?}");
        assert_eq!(line.iter().filter(|a| a.starts_with("--disable-features")).count(), 1);
        assert!(!command_line(profile, true, &switches).contains(&"--headless".to_owned()));
    }

    /// The command line is the one chromiumoxide 0.9.1 built when it launched the browser
    /// (what `pool::launch` gave it before the launch moved here): its builder is run on an
    /// executable that only writes down its arguments. Should an upgrade change chromiumoxide's
    /// defaults, this says so; whether to follow is then a choice.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_command_line_is_the_one_chromiumoxide_built() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("chromium");
        let written = dir.path().join("args");
        std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", written.display())).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let profile = dir.path().join("profile");
        let flags: [(&str, &[&str]); 3] = [("disable-gpu", &[]), ("mute-audio", &[]), ("disable-features", &["IsolateOrigins", "site-per-process"])];
        let config = chromiumoxide::BrowserConfig::builder()
            .chrome_executable(&fake)
            .no_sandbox()
            .user_data_dir(&profile)
            .viewport(None)
            .respect_https_errors()
            .args(flags)
            .arg(("proxy-server", "http://127.0.0.1:9"))
            .arg(("proxy-bypass-list", "<-loopback>"))
            .build()
            .unwrap();
        config.launch().unwrap().wait().await.unwrap();
        let mut theirs: Vec<String> = std::fs::read_to_string(&written).unwrap().lines().map(str::to_owned).collect();
        let switches: Vec<(&str, Vec<String>)> = flags
            .iter()
            .map(|(n, v)| (*n, v.iter().map(|v| (*v).to_owned()).collect()))
            .chain([("proxy-server", vec!["http://127.0.0.1:9".to_owned()]), ("proxy-bypass-list", vec!["<-loopback>".to_owned()])])
            .collect();
        let mut ours = command_line(&profile, false, &switches);
        // chromiumoxide keeps switches in a hash map: the same set, in any order.
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs);
    }

    /// A stand-in for a browser a crash left running: `sh` leading a process group of its own
    /// with a helper in it, both with `--user-data-dir=<profile>` in their command lines, as
    /// every Chromium process has (and `sleep`s without it).
    #[cfg(target_os = "linux")]
    fn leftover(profile: &Path) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        const SCRIPT: &str = "if [ \"$0\" = helper ]; then while :; do sleep 1; done; fi\nsh -c \"$LEFTOVER\" helper \"$@\" &\nwhile :; do sleep 1; done";
        let child = std::process::Command::new("sh")
            .args(["-c", SCRIPT, "browser", &format!("--user-data-dir={}", profile.display())])
            .env("LEFTOVER", SCRIPT)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        assert!(wait_for(|| marked(profile).len() == 2), "the stand-in and its helper run");
        child
    }

    /// Live processes with `--user-data-dir=<profile>` among their arguments.
    #[cfg(target_os = "linux")]
    fn marked(profile: &Path) -> Vec<u32> {
        let marker = format!("--user-data-dir={}", profile.display());
        processes().into_iter().filter(|(pid, s)| s.state != 'Z' && command_line_of(*pid).contains(&marker)).map(|(pid, _)| pid).collect()
    }

    /// Whether `done` holds within 10 s (signals take a moment to land).
    #[cfg(target_os = "linux")]
    fn wait_for(done: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_leftover_browser_is_killed_with_its_group_and_its_profile_and_record_removed() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let profile = tempfile::Builder::new().prefix(PROFILE_PREFIX).tempdir().unwrap().keep();
        let mut browser = leftover(&profile);
        Record::of(browser.id(), &profile).write(&dir.path().join(RECORD_FILE)).unwrap();
        kill_leftover_browser(dir.path());
        assert_eq!(browser.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(wait_for(|| marked(&profile).is_empty()), "its helper is killed too: {:?}", marked(&profile));
        assert!(!profile.exists(), "the profile folder is removed");
        assert!(!dir.path().join(RECORD_FILE).exists(), "and the record");
        end_group(browser.id());
    }

    /// Ends what is left of a stand-in's group (its `sleep`s).
    #[cfg(target_os = "linux")]
    fn end_group(pid: u32) {
        // SAFETY: a plain system call on a group the test made.
        unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_leftover_browser_s_helpers_are_killed_when_the_browser_itself_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let profile = tempfile::Builder::new().prefix(PROFILE_PREFIX).tempdir().unwrap().keep();
        let mut browser = leftover(&profile);
        Record::of(browser.id(), &profile).write(&dir.path().join(RECORD_FILE)).unwrap();
        browser.kill().unwrap();
        browser.wait().unwrap();
        assert_eq!(marked(&profile).len(), 1, "the helper outlived it");
        kill_leftover_browser(dir.path());
        assert!(wait_for(|| marked(&profile).is_empty()), "{:?}", marked(&profile));
        end_group(browser.id());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn processes_that_are_not_the_recorded_browser_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        kill_leftover_browser(dir.path());
        let profile = tempfile::Builder::new().prefix(PROFILE_PREFIX).tempdir().unwrap().keep();
        let mut browser = leftover(&profile);
        let pid = browser.id();
        let start = start_time(pid).unwrap();
        let elsewhere = profile.with_file_name(format!("{PROFILE_PREFIX}other"));
        // The PID and group of a browser of another profile; then one that started long after
        // these processes (its PID was reused since): neither is this one.
        let later = start + 100_000;
        for record in [Record { pid, start: Some(start), profile: elsewhere }, Record { pid, start: Some(later), profile: profile.clone() }] {
            record.write(&dir.path().join(RECORD_FILE)).unwrap();
            kill_leftover_browser(dir.path());
            assert_eq!(marked(&profile).len(), 2, "nothing killed for {record:?}");
            assert!(!dir.path().join(RECORD_FILE).exists(), "the record is cleared all the same");
        }
        end_group(pid);
        browser.wait().unwrap();
        let _ = std::fs::remove_dir_all(&profile);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_browser_that_fails_to_start_is_reported_killed_and_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let sh = Path::new("/bin/sh");
        let script = |text: &str| vec!["-c".to_owned(), text.to_owned(), "browser".to_owned(), format!("--user-data-dir={}", profile.display())];
        let error = ChromiumProcess::spawn(sh, script("echo no display >&2; exit 3"), Duration::from_secs(30), Some(dir.path()), &profile)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("exited (exit status: 3) before it was ready: no display"), "{error}");
        assert!(!dir.path().join(RECORD_FILE).exists());
        // One that never says where DevTools listens is killed when the launch gives up.
        let error = ChromiumProcess::spawn(sh, script("echo starting >&2; while :; do sleep 1; done"), Duration::from_millis(300), Some(dir.path()), &profile)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("did not print its DevTools address"), "{error}");
        assert!(wait_for(|| marked(&profile).is_empty()), "killed: {:?}", marked(&profile));
        assert!(!dir.path().join(RECORD_FILE).exists());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_started_browser_is_recorded_and_its_group_killed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let args = vec![
            "-c".to_owned(),
            "echo 'DevTools listening on ws://127.0.0.1:9/devtools/browser/x' >&2; sh -c 'while :; do sleep 1; done' helper \"$@\" & while :; do sleep 1; done".to_owned(),
            "browser".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let process = ChromiumProcess::spawn(Path::new("/bin/sh"), args, Duration::from_secs(30), Some(dir.path()), &profile).await.unwrap();
        assert_eq!(process.devtools_url, "ws://127.0.0.1:9/devtools/browser/x");
        let record = Record::parse(&std::fs::read_to_string(dir.path().join(RECORD_FILE)).unwrap()).unwrap();
        assert_eq!((record.pid, record.start, record.profile.as_path()), (process.pid, start_time(process.pid), profile.as_path()));
        assert!(wait_for(|| marked(&profile).len() == 2), "{:?}", marked(&profile));
        drop(process);
        assert!(wait_for(|| marked(&profile).is_empty()), "the whole group is killed: {:?}", marked(&profile));
        assert!(!dir.path().join(RECORD_FILE).exists(), "and the record removed");
    }
}
