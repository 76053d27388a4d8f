//! What the end-to-end tests share: a real `hivemind serve` on a temporary data dir, the
//! CLI run as a user would, the demo app (as a process or as a local Docker image), and
//! the test plugins.
#![allow(dead_code)]

pub mod postgres;
pub mod registry;
pub mod webdriver;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo app, built once per test binary in a target dir of its own (the outer
/// cargo's dir stays free).
pub fn demo_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = target_dir().join("demo");
        run_ok(
            cargo()
                .args(["build", "--release", "-p", "hivemind-demo", "--target-dir"])
                .arg(&dir)
                .current_dir(repo_root()),
            "building the demo app",
        );
        dir.join("release/hivemind-demo")
    })
}

/// The process-runtime "image" of demo version `version`, with extra flags.
pub fn demo_command(version: &str, flags: &str) -> String {
    format!("{} {version} {flags}", demo_binary().display()).trim().to_string()
}

/// A test plugin from tests/plugins, built once per test binary.
pub fn test_plugin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = target_dir().join("test-plugins");
        // Strategies, then the hook on its own: the two kinds enable different sdk features.
        for packages in [&[][..], &["-p", "hostile-hook"][..]] {
            run_ok(
                cargo()
                    .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
                    .arg(&dir)
                    .args(packages)
                    .current_dir(repo_root().join("tests/plugins")),
                "building the test plugins",
            );
        }
        dir.join("wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

/// The `test-swap` strategy built as `version` (each version in a target dir of its own), so
/// that a test can install one version of a plugin and then the next.
pub fn swap_plugin(version: &str) -> PathBuf {
    named_swap_plugin("test-swap", version)
}

/// The `test-swap` strategy built under another name, such as a built-in's.
pub fn named_swap_plugin(name: &str, version: &str) -> PathBuf {
    let dir = target_dir().join(format!("test-plugins-{name}-{version}"));
    run_ok(
        cargo()
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "swap", "--target-dir"])
            .arg(&dir)
            .env("HIVEMIND_TEST_SWAP_NAME", name)
            .env("HIVEMIND_TEST_SWAP_VERSION", version)
            .current_dir(repo_root().join("tests/plugins")),
        "building the swap test plugin",
    );
    dir.join("wasm32-wasip2/release/swap.wasm")
}

/// Whether to run Docker tests: yes when the engine answers; a skip otherwise, unless
/// HIVEMIND_REQUIRE_DOCKER=1 (as in CI) turns the skip into a failure.
pub fn docker_available(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !answers {
        if std::env::var("HIVEMIND_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{test}: HIVEMIND_REQUIRE_DOCKER=1 but no Docker engine answers `docker info`");
        }
        eprintln!("{test}: no Docker engine answers; skipped (set HIVEMIND_REQUIRE_DOCKER=1 to make this a failure)");
    }
    answers
}

/// Whether python3 can import every one of `modules` (test tools from PyPI): yes, or a
/// skip, unless HIVEMIND_REQUIRE_TOOLS=1 (as in CI) turns the skip into a failure.
pub fn python_modules_available(test: &str, modules: &[&str], install: &str) -> bool {
    let script = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let ok = Command::new("python3").args(["-c", &script]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{test}: HIVEMIND_REQUIRE_TOOLS=1 but python3 cannot import {modules:?}; {install}");
        }
        eprintln!(
            "{test}: python3 cannot import {modules:?}; skipped ({install}, or set HIVEMIND_REQUIRE_TOOLS=1 to make this a failure)"
        );
    }
    ok
}

/// Whether every one of `tools` is on the PATH: yes, or a skip, unless
/// HIVEMIND_REQUIRE_TOOLS=1 (as in CI) turns the skip into a failure.
pub fn tools_available(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        // Found if it starts at all (`openssl --version` exits 1: its flag is `version`).
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if !missing.is_empty() {
        if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "{test}: HIVEMIND_REQUIRE_TOOLS=1 but {missing:?} cannot be run; apt-get install {}",
                missing.join(" ")
            );
        }
        eprintln!("{test}: {missing:?} cannot be run; skipped (set HIVEMIND_REQUIRE_TOOLS=1 to make this a failure)");
    }
    missing.is_empty()
}

/// Builds the demo images hivemind-demo:v1, :v2 and :v3, FROM scratch, once per test binary.
pub fn demo_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        run_ok(
            Command::new("bash").arg(repo_root().join("demo/build-image.sh")).args(["v1", "v2", "v3"]),
            "building the demo images",
        )
    });
}

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

    pub fn start_in(data_dir: &Path, runtime: &str) -> Server {
        Server::start_with(data_dir, runtime, &[])
    }

    /// A server on `data_dir` with extra `serve` flags.
    pub fn start_with(data_dir: &Path, runtime: &str, flags: &[&str]) -> Server {
        // The suite's second pass runs every server on Postgres: a database per data dir,
        // kept for the servers a test restarts on it.
        let database = postgres::suite_on_postgres() && !flags.contains(&"--database-url");
        Server::launch(data_dir, runtime, flags, database)
    }

    /// A server on SQLite in `data_dir`, whichever pass of the suite runs.
    pub fn start_on_sqlite(data_dir: &Path, runtime: &str) -> Server {
        Server::launch(data_dir, runtime, &[], false)
    }

    fn launch(data_dir: &Path, runtime: &str, flags: &[&str], suite_database: bool) -> Server {
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
            .find(|w| w.starts_with("http://"))
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

/// The Postgres database of a data dir in the suite's Postgres pass (made at first use).
pub fn test_database(data_dir: &Path) -> String {
    let file = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url.trim().to_string();
    }
    let url = postgres::shared().database();
    std::fs::write(&file, &url).unwrap();
    url
}

/// The store of a data dir as its server sees it: SQLite, or the Postgres database of the
/// suite's Postgres pass.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<hivemind::store::Store> {
    let url = std::fs::read_to_string(data_dir.join("test-database-url")).ok();
    hivemind::store::Store::open_url(url.as_deref().map(str::trim), data_dir).await
}

/// The pid of the router process of a data dir, from its pid file.
pub fn router_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("router.pid")).ok()?.trim().parse().ok()
}

/// Whether a process runs (and is not a zombie).
pub fn process_runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// Kills the router process of a data dir, if one runs.
pub fn stop_router(data_dir: &Path) {
    if let Some(pid) = router_pid(data_dir) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Removes every replica recorded in a data dir's store: process groups or containers.
pub fn remove_replicas(data_dir: &Path, runtime: &str) {
    remove_replicas_of(data_dir, runtime, None)
}

/// Removes every replica recorded in the store of a server: its Postgres database when
/// `database_url` names one, else the data dir's (SQLite, or the suite's Postgres pass).
pub fn remove_replicas_of(data_dir: &Path, runtime: &str, database_url: Option<&str>) {
    let (dir, url) = (data_dir.to_path_buf(), database_url.map(str::to_string));
    let replicas = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = match url {
                Some(url) => hivemind::store::Store::connect(&url).await,
                None => open_store(&dir).await,
            };
            match store {
                Ok(store) => store.replicas().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        })
    })
    .join()
    .unwrap_or_default();
    kill_replicas(replicas, runtime);
}

fn kill_replicas(replicas: Vec<hivemind::model::ReplicaRecord>, runtime: &str) {
    for r in replicas {
        // A replica of a deployment target (`docker@edge`) is its driver's, not the server's.
        let driver = if r.driver.is_empty() { runtime } else { r.driver.split('@').next().unwrap_or(runtime) };
        match driver {
            "docker" => {
                let _ = Command::new("docker").args(["rm", "-f", &r.handle]).output();
            }
            "swarm" => {
                let _ = Command::new("docker").args(["service", "rm", &r.handle]).output();
            }
            _ => {
                if let Ok(pid) = r.handle.parse::<i32>() {
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// `docker kill -s KILL` of a container, which must succeed.
pub fn docker_kill(container: &str) {
    let killed = Command::new("docker").args(["kill", "-s", "KILL", container]).output();
    assert!(killed.is_ok_and(|o| o.status.success()), "docker kill {container}");
}

/// The container of the running task of Swarm service `service` on this node.
pub fn swarm_container(service: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter", &format!("label=com.docker.swarm.service.id={service}")])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "no running container of service {service}");
    id
}

/// Waits until `check` holds, polling every 50 ms; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection; returns (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    http_request("GET", url, None)
}

pub fn http_request(method: &str, url: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
    http_request_with(method, url, body, None)
}

/// GETs `path` from 127.0.0.1:`port` over a fresh connection, naming `host` in the Host
/// header (as a browser sent to `http://host/` would); returns (status, body).
pub fn http_get_as(port: u16, host: &str, path: &str) -> (u16, String) {
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect failed: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    exchange(stream, request.as_bytes())
}

/// Sends a whole request and reads the answer to the end; returns (status, body).
fn exchange(mut stream: TcpStream, request: &[u8]) -> (u16, String) {
    if stream.write_all(request).is_err() {
        return (0, "write failed".into());
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() && response.is_empty() {
        return (0, "read failed".into());
    }
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

/// A minimal HTTP/1.1 request over a fresh connection, with a bearer token if given.
pub fn http_request_with(method: &str, url: &str, body: Option<(&str, &[u8])>, token: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let stream = match TcpStream::connect(host) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect failed: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        request.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
    }
    request.push_str("\r\n");
    let mut data = request.into_bytes();
    if let Some((_, bytes)) = body {
        data.extend_from_slice(bytes);
    }
    exchange(stream, &data)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// GETs `/` through an app's router `n` times and returns the bodies, trimmed.
pub fn versions_served(port: u16, n: usize) -> Vec<String> {
    (0..n).map(|_| http_get(&format!("http://127.0.0.1:{port}/")).1.trim().to_string()).collect()
}

/// A bounded load loop through an app's router: a few threads GET `/` until stopped (or
/// for two minutes at most), counting every non-2xx answer and every connection error.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

/// What a load loop saw.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    pub failures: Vec<String>,
}

impl LoadReport {
    pub fn assert_no_failures(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} requests failed, first: {:?}",
            self.failures.len(),
            self.ok + self.failures.len() as u64,
            &self.failures[..self.failures.len().min(5)]
        );
        assert!(self.ok > 0, "{what}: the load loop sent nothing");
    }
}

impl Load {
    /// Each request on a new connection.
    pub fn start(port: u16, threads: usize) -> Load {
        Load::spawn(threads, move |ok, failures| {
            let (status, body) = http_get(&format!("http://127.0.0.1:{port}/"));
            if (200..300).contains(&status) {
                *ok += 1;
            } else {
                failures.push(format!("{status} {}", body.trim()));
                // A client that failed does not retry in a tight loop.
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    /// Each request on a new connection to a shared entrypoint, for the app bound to `host`.
    pub fn through_host(port: u16, host: &str, threads: usize) -> Load {
        let host = host.to_string();
        Load::spawn(threads, move |ok, failures| {
            let (status, body) = http_get_as(port, &host, "/");
            if (200..300).contains(&status) {
                *ok += 1;
            } else {
                failures.push(format!("{status} {}", body.trim()));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    /// Each thread on a keep-alive connection, as wrk and browsers send: a new connection
    /// only when the router answered with `Connection: close`, or after a failure. A
    /// connection closed before its answer came is a failed request (wrk counts it so;
    /// nothing is retried).
    pub fn keep_alive(port: u16, threads: usize) -> Load {
        Load::spawn(threads, move |ok, failures| {
            thread_local! {
                static CONNECTION: std::cell::RefCell<Option<BufReader<TcpStream>>> = const { std::cell::RefCell::new(None) };
            }
            CONNECTION.with_borrow_mut(|connection| {
                if connection.is_none() {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(stream) => {
                            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            *connection = Some(BufReader::new(stream));
                        }
                        Err(e) => {
                            failures.push(format!("connect: {e}"));
                            std::thread::sleep(Duration::from_millis(5));
                            return;
                        }
                    }
                }
                match keep_alive_get(connection.as_mut().unwrap()) {
                    Ok((status, close)) => {
                        if (200..300).contains(&status) {
                            *ok += 1;
                        } else {
                            failures.push(format!("{status} (keep-alive)"));
                        }
                        if close {
                            *connection = None;
                        }
                    }
                    Err(e) => {
                        failures.push(format!("keep-alive connection: {e}"));
                        *connection = None;
                    }
                }
            })
        })
    }

    /// `threads` threads that run `request` until stopped, or for two minutes at most.
    fn spawn(threads: usize, request: impl Fn(&mut u64, &mut Vec<String>) + Send + Clone + 'static) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let request = request.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let (mut ok, mut failures) = (0u64, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(120)
                    {
                        request(&mut ok, &mut failures);
                    }
                    (ok, failures)
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn stop(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut report = LoadReport { ok: 0, failures: Vec::new() };
        for t in self.threads {
            let (ok, failures) = t.join().unwrap();
            report.ok += ok;
            report.failures.extend(failures);
        }
        report
    }
}

/// One GET on a keep-alive connection: the status, and whether the server said it closes
/// the connection after it.
fn keep_alive_get(connection: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    use std::io::{Error, ErrorKind};
    connection.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: load\r\n\r\n")?;
    let mut line = String::new();
    if connection.read_line(&mut line)? == 0 {
        return Err(Error::new(ErrorKind::UnexpectedEof, "closed before the answer"));
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut length, mut chunked, mut close) = (0usize, false, false);
    loop {
        line.clear();
        if connection.read_line(&mut line)? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "closed in the answer's headers"));
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match (name.trim(), value.trim()) {
                ("content-length", n) => length = n.parse().unwrap_or(0),
                ("transfer-encoding", v) => chunked = v.contains("chunked"),
                ("connection", v) => close = v.contains("close"),
                _ => {}
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            connection.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; n + 2];
            connection.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length];
        connection.read_exact(&mut body)?;
    }
    Ok((status, close))
}

/// GETs `/` through a router as one sticky client: sends `cookie` if given, and returns
/// the cookie to send next time with the body.
pub fn sticky_get(port: u16, cookie: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie_line = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(stream, "GET / HTTP/1.1\r\nHost: x\r\n{cookie_line}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let set = head.lines().find_map(|l| {
        l.to_ascii_lowercase().starts_with("set-cookie:").then(|| l[11..].trim().split(';').next().unwrap().to_string())
    });
    (set.or(cookie.map(str::to_string)).unwrap_or_default(), body.trim().to_string())
}

/// A free TCP port on loopback (free when asked: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test CA and certificates it signed, made with the openssl CLI.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca = TestCa { dir: tempfile::tempdir().unwrap() };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=hivemind test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        ca
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = std::process::Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A certificate for `host` and its key: (cert.pem, key.pem).
    pub fn issue(&self, host: &str) -> (String, String) {
        self.issue_for(host, &format!("DNS:{host}"))
    }

    /// A certificate named `name` for the subject alternative names `sans`
    /// (`DNS:localhost,IP:127.0.0.1`), and its key.
    pub fn issue_for(&self, name: &str, sans: &str) -> (String, String) {
        self.issue_valid_for(name, sans, "30")
    }

    /// A certificate for `host` that expires as it is made (valid for 0 days).
    pub fn issue_expired(&self, host: &str) -> (String, String) {
        self.issue_valid_for(&format!("expired-{host}"), &format!("DNS:{host}"), "0")
    }

    fn issue_valid_for(&self, name: &str, sans: &str, days: &str) -> (String, String) {
        let host = name;
        let ext = format!("{host}.ext");
        std::fs::write(
            self.dir.path().join(&ext),
            format!("subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        let (key, csr, cert) = (format!("{host}.key"), format!("{host}.csr"), format!("{host}.pem"));
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            days,
            "-out",
            &cert,
            "-extfile",
            &ext,
        ]);
        (self.path(&cert), self.path(&key))
    }
}
