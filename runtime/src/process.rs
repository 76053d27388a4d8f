//! The `process` driver: a replica is a local command, run with `PORT` set.
//!
//! The "image" is a command line, split into words as a POSIX shell would, so
//! `sh -c 'exec ./server --port $PORT'` works. Each replica runs in its own process
//! group, so that stopping it reaches the children a shell started, and so that a
//! crash of the host does not take the replicas down with it (they are adopted on start).

use super::{Driver, JobOutcome, StartSpec, Started};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct ProcessDriver {
    log_dir: PathBuf,
    /// The port of each replica this process started, by handle, held until it stops:
    /// a replica binds its port some time after it starts, and meanwhile no router or
    /// other replica may be handed the same one.
    ports: std::sync::Mutex<std::collections::HashMap<String, hivemind_ports::ReservedPort>>,
    /// How replicas this process started ended, by handle: a task waits on each.
    ended: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// The replicas this process started (the others were adopted: how they end is
    /// not ours to see).
    children: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The user replicas and jobs run as (`serve --run-as`), when not the server's own.
    run_as: Option<RunAs>,
}

/// An unprivileged account for replicas and jobs: they cannot read the server's data dir
/// (its token, its database) nor signal the server.
#[derive(Clone, Debug)]
pub struct RunAs {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Its home directory, the replicas' `HOME` in place of the server's.
    pub home: Option<String>,
}

impl RunAs {
    /// The account `name` (a user name or a numeric uid), checked against what this
    /// process may do: switching to another user needs root, or CAP_SETUID and CAP_SETGID.
    pub fn lookup(name: &str) -> Result<RunAs> {
        let (uid, gid, home) = account(name)?;
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        if uid != euid && euid != 0 && !may_manage_other_users() {
            bail!(
                "--run-as {name}: this server runs as uid {euid}, which may not start, stop and find processes of another user; \
                 run it as root, or give it CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_SYS_PTRACE (AmbientCapabilities= in its systemd unit)"
            );
        }
        if uid == 0 {
            bail!("--run-as {name}: that is root; name an unprivileged account such as `nobody`");
        }
        Ok(RunAs { name: name.to_string(), uid, gid, home })
    }
}

/// The uid and primary gid of the account `name`, from the system's user database.
fn account(name: &str) -> Result<(libc::uid_t, libc::gid_t, Option<String>)> {
    let c_name = std::ffi::CString::new(name).map_err(|_| anyhow::anyhow!("--run-as `{name}` holds a NUL byte"))?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live buffer of the size given.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc == 0 && !found.is_null() {
        // SAFETY: pw_dir points into `buf`, NUL-terminated, when not null.
        let home = (!entry.pw_dir.is_null())
            .then(|| unsafe { std::ffi::CStr::from_ptr(entry.pw_dir) }.to_string_lossy().into_owned());
        return Ok((entry.pw_uid, entry.pw_gid, home));
    }
    // A number with no account has no group of its own to run with: guessing one (its
    // uid) could land on a group that matters, such as `docker`'s.
    bail!("--run-as {name}: no such user on this host; create it (useradd --system {name}) or name another")
}

/// Whether this process holds, in its effective set, what managing another user's
/// processes takes: CAP_SETGID (6) and CAP_SETUID (7) to start them, CAP_KILL (5) to stop
/// them, CAP_SYS_PTRACE (19) to read their environment when adopting them after a restart.
fn may_manage_other_users() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    [5, 6, 7, 19].iter().all(|bit| effective & (1 << bit) != 0)
}

impl ProcessDriver {
    pub fn new(log_dir: PathBuf) -> ProcessDriver {
        ProcessDriver {
            log_dir,
            ports: Default::default(),
            ended: Default::default(),
            children: Default::default(),
            run_as: None,
        }
    }

    /// Replicas and jobs run as `user` rather than as the server's own.
    pub fn running_as(mut self, user: Option<RunAs>) -> ProcessDriver {
        self.run_as = user;
        self
    }

    /// Whether the replica `handle` runs.
    fn running(&self, handle: &str) -> bool {
        let running = handle.parse().map(alive).unwrap_or(false);
        if !running {
            // It exited: its port is free to hand out again.
            self.ports.lock().unwrap().remove(handle);
        }
        running
    }

    fn log_path(&self, pid: &str) -> PathBuf {
        self.log_dir.join(format!("{pid}.log"))
    }
}

/// Splits a command line into words, with a clear error for bad quoting.
pub fn parse_command(image: &str) -> Result<Vec<String>> {
    let words = shell_words::split(image).map_err(|e| {
        anyhow::anyhow!("the command line `{image}` does not parse as shell words ({e}); check its quotes")
    })?;
    if words.is_empty() {
        bail!("the image is empty; give a command line to run, for example `./my-server`");
    }
    Ok(words)
}

/// Whether `program` can be run: a path to an executable, or a name found on PATH.
fn find_program(program: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        p.is_file()
            && std::fs::metadata(p)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| is_exec(p)))
        .unwrap_or(None)
}

fn signal(pid: i32, sig: i32) -> bool {
    // A negative pid signals the whole process group the replica leads.
    unsafe { libc::kill(-pid, sig) == 0 || libc::kill(pid, sig) == 0 }
}

/// Whether a replica's process runs. Our own children are reaped by the task that waits
/// on each; a replica adopted after a restart is not our child, and when it exits it stays
/// a zombie until init reaps it: a zombie still answers kill(pid, 0), so its state in
/// /proc is what says.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

#[async_trait]
impl Driver for ProcessDriver {
    fn name(&self) -> &'static str {
        "process"
    }

    fn supports_health_port(&self) -> bool {
        false
    }

    fn unsupported(&self, r: &crate::model::Resources) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(cpu) = r.cpu {
            notes.push(format!("the process runtime cannot limit CPU; --cpu {cpu} is ignored"));
        }
        if !r.volumes.is_empty() {
            notes.push(format!(
                "the process runtime cannot mount volumes; --volume {} is ignored",
                r.volumes.join(", ")
            ));
        }
        notes.extend(super::constraints_ignored("process", r));
        notes
    }

    async fn check_image(&self, image: &str, _: crate::model::PullPolicy) -> Result<()> {
        let words = parse_command(image)?;
        if find_program(&words[0]).is_none() {
            bail!(
                "`{}` is not an executable file nor a program on PATH; with the process runtime the image is the command line to run",
                words[0]
            );
        }
        Ok(())
    }

    async fn start(&self, spec: &StartSpec) -> Result<Started> {
        let words = parse_command(&spec.image)?;
        let reserved = hivemind_ports::reserve(std::net::IpAddr::from([127, 0, 0, 1]))?;
        let port = reserved.port();
        std::fs::create_dir_all(&self.log_dir)?;
        let log_file = tempfile_in(&self.log_dir, &spec.id)?;
        let mut cmd = command(&words[0], &words[1..], spec, log_file, self.run_as.as_ref())?;
        cmd.env("PORT", port.to_string()).kill_on_drop(false);
        let mut child = cmd.spawn().with_context(|| format!("starting `{}`", spec.image))?;
        let pid = child.id().context("the replica exited at once")?.to_string();
        // A task waits on it: it reaps it, and notes how it ended for the healer.
        self.children.lock().unwrap().insert(pid.clone());
        let (ended, children, handle) = (self.ended.clone(), self.children.clone(), pid.clone());
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe(status),
                Err(e) => format!("ended, its status unknown ({e})"),
            };
            // Noted only if nobody stopped it on purpose.
            if children.lock().unwrap().contains(&handle) {
                ended.lock().unwrap().insert(handle, how);
            }
        });
        let _ = std::fs::rename(self.log_dir.join(format!("{}.log", spec.id)), self.log_path(&pid));
        let address = format!("127.0.0.1:{port}");
        self.ports.lock().unwrap().insert(pid.clone(), reserved);
        Ok(Started { handle: pid, health_address: address.clone(), address })
    }

    async fn stop(&self, handle: &str, grace: Duration) -> Result<()> {
        let pid: i32 = handle.parse().with_context(|| format!("bad process handle {handle}"))?;
        let _port = self.ports.lock().unwrap().remove(handle);
        // Stopped on purpose: how it ends is nobody's concern.
        self.children.lock().unwrap().remove(handle);
        self.ended.lock().unwrap().remove(handle);
        if !self.running(handle) {
            return Ok(());
        }
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running(handle) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        signal(pid, libc::SIGKILL);
        for _ in 0..50 {
            if !self.running(handle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn run_job(&self, spec: &StartSpec, job: &str, timeout: Duration) -> Result<JobOutcome> {
        std::fs::create_dir_all(&self.log_dir)?;
        let log_path = self.log_dir.join(format!("{}.log", spec.id));
        let log_file = std::fs::File::create(&log_path)?;
        // A shell, so that `./migrate.sh && ./seed.sh` works as it would in a terminal.
        let mut child = command("sh", &["-c".to_string(), job.to_string()], spec, log_file, self.run_as.as_ref())?
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the job `{job}`"))?;
        let pid = child.id().map(|p| p as i32);
        let exit_code = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => Some(status?.code().unwrap_or(128 + 9)),
            Err(_) => {
                // Its whole process group: the shell and whatever it started.
                if let Some(pid) = pid {
                    signal(pid, libc::SIGKILL);
                }
                let _ = child.wait().await;
                None
            }
        };
        let output = super::output_tail(&std::fs::read(&log_path).unwrap_or_default());
        let _ = std::fs::remove_file(&log_path);
        Ok(JobOutcome { exit_code, output })
    }

    async fn is_running(&self, handle: &str) -> bool {
        self.running(handle)
    }

    async fn exit_status(&self, handle: &str) -> Option<String> {
        if !self.children.lock().unwrap().contains(handle) {
            return None;
        }
        // Its waiting task notes how it ended a moment after it does.
        for _ in 0..20 {
            if let Some(how) = self.ended.lock().unwrap().remove(handle) {
                self.children.lock().unwrap().remove(handle);
                return Some(how);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.children.lock().unwrap().remove(handle);
        None
    }

    async fn owned(&self, server_id: &str) -> Vec<(String, String)> {
        let wanted = format!("HIVEMIND_SERVER={server_id}");
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return found };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
            // Only the leader of a replica's process group counts: its children share
            // the environment but are stopped with it.
            if unsafe { libc::getpgid(pid.parse().unwrap_or(0)) }.to_string() != pid {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.contains(&wanted.as_bytes()) {
                continue;
            }
            let replica = vars
                .iter()
                .find_map(|v| v.strip_prefix(b"HIVEMIND_REPLICA="))
                .map(|v| String::from_utf8_lossy(v).to_string());
            if let Some(replica) = replica {
                found.push((replica, pid.to_string()));
            }
        }
        found
    }

    async fn logs(&self, handle: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(handle)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// How a process ended, for people: "exited with code 3", "killed by signal 9".
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_string(),
    }
}

/// The server's variables a replica or a job keeps: what a program needs to find its
/// tools and speak the user's language, and nothing that could hold a secret (the
/// server's database URL, its token). Documented in the book's security chapter.
pub const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// A replica's or a job's process: an empty environment plus the documented few of the
/// server's variables and the release's own, its output to `log`, in a process group of
/// its own (so that stopping it reaches what it started), and `--memory` applied as a cap
/// on its address space.
fn command(
    program: &str,
    args: &[String],
    spec: &StartSpec,
    log: std::fs::File,
    run_as: Option<&RunAs>,
) -> Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if let Some(user) = run_as {
        match &user.home {
            Some(home) => cmd.env("HOME", home),
            None => cmd.env_remove("HOME"),
        };
    }
    cmd.args(args)
        // Replicas are reached through loopback; apps that honour HOST bind only there.
        .env("HOST", "127.0.0.1")
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let memory = spec.resources.memory.as_deref().and_then(|m| crate::model::parse_memory(m).ok());
    let run_as = run_as.map(|u| (u.uid, u.gid));
    // SAFETY: umask, setrlimit, setgroups, setgid, setuid and prctl are async-signal-safe,
    // as code between fork and exec must be.
    unsafe {
        cmd.pre_exec(move || {
            // The server's own mask is 077 (its files are its own); an app gets the usual.
            libc::umask(0o022);
            if let Some(bytes) = memory {
                let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some((uid, gid)) = run_as {
                // The group first: after setuid there is no right left to change it. No
                // supplementary groups (the server's `docker` group among them).
                if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // No capability carried across exec, with or without --run-as: a server given
            // some (CAP_SETUID for --run-as) must not hand them to its apps.
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
    Ok(cmd)
}

fn tempfile_in(dir: &Path, id: &str) -> Result<std::fs::File> {
    Ok(std::fs::File::create(dir.join(format!("{id}.log")))?)
}
