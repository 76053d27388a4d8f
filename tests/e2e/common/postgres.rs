//! A real PostgreSQL for the tests: Debian's server (`initdb` and `pg_ctl` from
//! /usr/lib/postgresql/*/bin) on a loopback port, run by an unprivileged user (the
//! `postgres` account when the tests run as root, as in CI), with a fresh database for
//! each server a test starts. The shared instance serves the whole test binary and is
//! stopped by a watcher process when the binary exits; a test that stops its database
//! on purpose starts one of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The user the server runs as, when the tests run as root.
    user: Option<(u32, u32)>,
    /// Whether a commit is in the WAL on disk before it returns. The shared instance
    /// trades that for speed; one a test crashes on purpose must not, or an immediate
    /// stop loses the last commits (replica records among them) as no real database
    /// would.
    durable: bool,
}

/// Whether the tests should run every server on Postgres (the second pass of CI).
pub fn suite_on_postgres() -> bool {
    std::env::var("HIVEMIND_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// The directory of Debian's PostgreSQL server programs, if the package is installed.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Whether a PostgreSQL server can be started: yes, or a skip, unless
/// HIVEMIND_REQUIRE_TOOLS=1 (as in CI) turns the skip into a failure.
pub fn postgres_available(test: &str) -> bool {
    if server_bin().is_some() {
        return true;
    }
    if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: HIVEMIND_REQUIRE_TOOLS=1 but no PostgreSQL server is installed; apt-get install postgresql");
    }
    eprintln!("{test}: no PostgreSQL server (apt-get install postgresql); skipped");
    false
}

/// The instance the whole test binary shares.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let pg = Postgres::start_fast();
        pg.stop_when_tests_end();
        pg
    })
}

impl Postgres {
    /// A server of a test's own, which it may stop as a crash would: its commits are
    /// durable.
    pub fn start() -> Postgres {
        Postgres::init(true)
    }

    /// The shared server, which nobody stops: commits return before the WAL is written.
    fn start_fast() -> Postgres {
        Postgres::init(false)
    }

    /// initdb in a new directory, then start the server on a free loopback port.
    fn init(durable: bool) -> Postgres {
        let bin = server_bin().expect("a PostgreSQL server is installed (postgres_available)");
        let dir = tempfile::Builder::new().prefix("hivemind-pg").tempdir().unwrap().keep();
        let user = unsafe { libc::geteuid() == 0 }.then(unprivileged_user);
        if let Some((uid, gid)) = user {
            let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::chown(path.as_ptr(), uid, gid) }, 0, "chown {}", dir.display());
        }
        let data = dir.join("data");
        let out = Postgres::command(&bin, user, "initdb")
            .args(["--auth=trust", "--username=hivemind", "--encoding=UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Postgres { port: super::free_port(), dir, bin, user, durable };
        pg.start_again();
        pg
    }

    fn command(bin: &Path, user: Option<(u32, u32)>, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(bin.join(program));
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        command.env_remove("PGDATA").current_dir("/");
        command
    }

    /// Starts the server (again, after `stop`) and waits until it accepts connections.
    pub fn start_again(&self) {
        // fsync=off keeps the WAL in the page cache, which outlives a crash of the
        // server's processes; synchronous_commit=off would not wait for it at all.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
             -c synchronous_commit={} -c full_page_writes=off",
            self.port,
            self.dir.display(),
            if self.durable { "on" } else { "off" }
        );
        let out = Postgres::command(&self.bin, self.user, "pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &options])
            .stdout(Stdio::null())
            .output()
            .expect("running pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (as a crash of the database machine would).
    pub fn stop(&self) {
        let _ = Postgres::command(&self.bin, self.user, "pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.join("data"))
            .output();
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.execute(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://hivemind@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one statement on the `postgres` database.
    pub fn execute(&self, sql: &str) {
        let url = self.url("postgres");
        let sql = sql.to_string();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                use sqlx::Connection;
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match sqlx::PgConnection::connect(&url).await {
                        Ok(mut conn) => {
                            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                            return;
                        }
                        Err(e) if Instant::now() > deadline => panic!("connecting to {url}: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        })
        .join()
        .unwrap();
    }

    /// A watcher process stops the server and removes its files once this test binary
    /// has exited (no destructor runs for a static).
    fn stop_when_tests_end(&self) {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             kill -QUIT $(head -1 {dir}/data/postmaster.pid) 2>/dev/null; sleep 2; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        #[allow(clippy::zombie_processes)] // it outlives this process on purpose
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting the Postgres watcher");
    }
}

impl Drop for Postgres {
    /// An instance of a test's own goes with it.
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `postgres` account Debian's package makes, or `nobody`.
fn unprivileged_user() -> (u32, u32) {
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, name])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok())
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
            return (uid, gid);
        }
    }
    panic!("no unprivileged user (postgres, nobody) to run PostgreSQL as");
}
