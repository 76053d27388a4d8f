//! A real `hivemind serve` on a data dir, and the CLI run against it as a user would.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::artifacts::target_dir;
use super::http_client::http_request_with;
use super::postgres;
use super::processes::{remove_replicas_of, stop_router};
use super::store::test_database;

/// What a CLI run printed, and how it ended.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn ok(self) -> CliRun {
        assert_eq!(self.code, 0, "the command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// A real `hivemind serve`, stopped (and its replicas removed) when dropped.
pub struct Server {
    child: Option<Child>,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub url: String,
    /// The API token the server made in its data dir.
    pub token: String,
    runtime: String,
    /// The Postgres database the server uses, if not SQLite in its data dir.
    pub database_url: Option<String>,
    /// Set by `stop` and `kill`: the test restarts a server on the same data dir, and that
    /// one removes the replicas when it goes.
    handed_over: bool,
}

/// A new data dir whose compiled-code cache is the one every such server of the suite
/// shares: the built-in plugins are compiled once per suite, not once per server (a
/// second and more of CPU each). Tests that give a data dir of their own
/// (`Server::start_in`) keep a cache of their own, so the cache's own test sees a first
/// start compile.
fn fresh_data_dir() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let shared = target_dir().join("e2e-compiled");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, temp.path().join("compiled")).unwrap();
    temp
}

impl Server {
    /// A server on a new data dir with `runtime` ("process" or "docker").
    pub fn start(runtime: &str) -> Server {
        let temp = fresh_data_dir();
        let mut server = Server::start_in(temp.path(), runtime);
        server._temp = Some(temp);
        server
    }

    /// A server on a new data dir with extra `serve` flags.
    pub fn start_with_flags(runtime: &str, flags: &[&str]) -> Server {
        let temp = fresh_data_dir();
        let mut server = Server::start_with(temp.path(), runtime, flags);
        server._temp = Some(temp);
        server
    }

    /// A server on a new data dir with extra `serve` flags and environment variables of
    /// its own (`DOCKER_CONFIG`, a `PATH` that finds a credential helper).
    pub fn start_with_env(runtime: &str, flags: &[&str], env: &[(&str, &str)]) -> Server {
        let temp = fresh_data_dir();
        let database = postgres::suite_on_postgres() && !flags.contains(&"--database-url");
        let mut server = Server::launch(temp.path(), runtime, flags, database, env);
        server._temp = Some(temp);
        server
    }

    pub fn start_in(data_dir: &Path, runtime: &str) -> Server {
        Server::start_with(data_dir, runtime, &[])
    }

    /// A server on `data_dir` with extra `serve` flags.
    pub fn start_with(data_dir: &Path, runtime: &str, flags: &[&str]) -> Server {
        // The suite's second pass runs every server on Postgres: a database per data dir,
        // kept for the servers a test restarts on it.
        let database = postgres::suite_on_postgres() && !flags.contains(&"--database-url");
        Server::launch(data_dir, runtime, flags, database, &[])
    }

    /// A server on SQLite in `data_dir`, whichever pass of the suite runs.
    pub fn start_on_sqlite(data_dir: &Path, runtime: &str) -> Server {
        Server::launch(data_dir, runtime, &[], false, &[])
    }

    fn launch(data_dir: &Path, runtime: &str, flags: &[&str], suite_database: bool, env: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
        let database = suite_database.then(|| test_database(data_dir));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hivemind"))
            .args(["serve", "--api-addr", "127.0.0.1:0", "--runtime", runtime, "--data-dir"])
            .arg(data_dir)
            .args(flags)
            // A name per data dir, as a real server's HOST:PORT is: a server restarted on
            // the data dir takes its own lease back at once.
            .args(database.iter().flat_map(|url| ["--database-url", url.as_str(), "--server-name", "test-server"]))
            .env("HIVEMIND_LOG", "hivemind=debug,warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting hivemind serve");
        // The server prints its API address once it serves; read it, then keep draining.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| {
                panic!(
                    "the server did not start: {line}\n{}",
                    std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default()
                )
            })
            .to_string();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        let token = std::fs::read_to_string(data_dir.join("token"))
            .expect("the server writes its token at start")
            .trim()
            .to_string();
        Server {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            url,
            token,
            runtime: runtime.to_string(),
            handed_over: false,
            database_url: flags
                .iter()
                .position(|f| *f == "--database-url")
                .and_then(|i| flags.get(i + 1))
                .map(|url| url.to_string())
                .or(database),
        }
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> CliRun {
        let out = Command::new(env!("CARGO_BIN_EXE_hivemind"))
            .args(args)
            .env("HIVEMIND_URL", &self.url)
            .env("HIVEMIND_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        CliRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs the CLI with `stdin` as its standard input and extra environment variables.
    pub fn cli_with(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> CliRun {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hivemind"))
            .args(args)
            .env("HIVEMIND_URL", &self.url)
            .env("HIVEMIND_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        CliRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs the CLI with `--output json` and parses what it printed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.cli(&all).ok().json()
    }

    /// GETs an API path and parses the JSON.
    pub fn api(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert!(status < 400, "GET {path}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// POSTs bytes to an API path; returns the status and the parsed JSON answer.
    pub fn api_post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) =
            http_request_with("POST", &format!("{}{path}", self.url), Some((content_type, body)), Some(&self.token));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// GETs an API path with the token; returns the status and the raw body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_request_with("GET", &format!("{}{path}", self.url), None, Some(&self.token))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits; replicas keep running.
    pub fn stop(&mut self) {
        self.handed_over = true;
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.handed_over = true;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `hivemind app deploy --name APP --image IMAGE --health-check-path /health --output
    /// json`, with `extra` flags after them; without --detach, it returns when the
    /// deployment ends (or awaits approval).
    pub fn deploy(&self, app: &str, image: &str, extra: &[&str]) -> CliRun {
        let mut args = vec![
            "app",
            "deploy",
            "--name",
            app,
            "--image",
            image,
            "--health-check-path",
            "/health",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// The versions of an app's replicas, sorted.
    pub fn replica_versions(&self, app: &str) -> Vec<String> {
        let app = self.api(&format!("/api/apps/{app}"));
        let mut v: Vec<String> =
            app["replicas"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    }

    /// A deployment's event log.
    pub fn events(&self, id: &str) -> Vec<Value> {
        self.api(&format!("/api/deployments/{id}/events")).as_array().unwrap().clone()
    }

    /// The router port of an app.
    pub fn app_port(&self, app: &str) -> u16 {
        self.api(&format!("/api/apps/{app}"))["port"].as_u64().unwrap() as u16
    }

    /// Waits until a deployment ends; returns its final record.
    pub fn wait_for(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.api(&format!("/api/deployments/{id}"));
            if d["completed"] == true {
                return d;
            }
            assert!(Instant::now() < deadline, "deployment {id} did not end within {timeout:?}: {d}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let handed_over = self.handed_over;
        self.kill();
        if !handed_over {
            remove_replicas_of(&self.data_dir, &self.runtime, self.database_url.as_deref());
        }
        // The router process outlives `serve` by design: stop it with the last server of its
        // data dir (a data dir this server owns goes with it).
        if !handed_over || self._temp.is_some() {
            stop_router(&self.data_dir);
        }
        if std::thread::panicking() {
            eprintln!("---- server log ----\n{}", self.log());
        }
    }
}
