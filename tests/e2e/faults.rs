//! What the server survives (issue 41): slow and numerous clients on the API port, the
//! data dir's disk full (a real filesystem of a few MiB, a tmpfs, filled to the last
//! byte), and its Postgres database stopped, each in the middle of the work; traffic
//! through the router throughout.

use crate::common::postgres::{Postgres, postgres_available};
use crate::common::{Load, Server, demo_command, http_get, target_dir, versions_served, wait_until};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `mib` MiB mounted for a test (so root only), unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(test: &str, mib: u32) -> Option<SmallDisk> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("HIVEMIND_REQUIRE_DOCKER").is_none(), "{test} mounts a tmpfs: CI runs as root");
            eprintln!("{test}: skipped, mounting a small disk needs root");
            return None;
        }
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755"), "hivemind-test"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr));
        Some(SmallDisk { dir, _parent: parent })
    }

    /// A data dir on this disk, sharing the suite's compiled plugins (which live elsewhere).
    fn data_dir(&self) -> PathBuf {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let shared = target_dir().join("e2e-compiled");
        std::fs::create_dir_all(&shared).unwrap();
        let _ = std::os::unix::fs::symlink(&shared, data.join("compiled"));
        data
    }

    /// Writes until the disk has no byte left.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0u8; 64 << 10];
        while filler.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while filler.write_all(&small).is_ok() {}
        let _ = filler.write_all(&[0u8]);
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn canary_flags() -> Vec<&'static str> {
    vec![
        "--replicas",
        "2",
        "--strategy",
        "canary",
        "--steps",
        "25,50,100",
        "--interval",
        "2",
        "--min-requests",
        "5",
        "--detach",
    ]
}

#[test]
fn a_deploy_on_a_full_disk_is_a_503_that_names_it_and_the_release_keeps_serving() {
    let Some(disk) = SmallDisk::mount("full disk before a deploy", 48) else { return };
    let server = Server::start_on_sqlite(&disk.data_dir(), "process");
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");
    let load = Load::start(port, 2);

    disk.fill();
    let run = server.deploy("web", &demo_command("v2", ""), &[]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("disk") && run.stderr.contains("full"), "{}", run.stderr);
    let spec = serde_json::json!({"app": "web", "image": demo_command("v2", ""), "health_check_path": "/health"});
    let (status, answer) = server.api_post("/api/deployments", "application/json", spec.to_string().as_bytes());
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable", "{answer}");
    eprintln!("full disk before a deploy: {}", answer["error"]["message"]);
    assert_eq!(http_get(&format!("{}/healthz", server.url)).0, 200);
    disk.free();

    let report = load.stop();
    eprintln!(
        "a deploy refused on a full disk: {} requests through the router, {} failed",
        report.ok,
        report.failures.len()
    );
    report.assert_no_failures("a deploy refused on a full disk");
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
    // Once there is room, the same deploy goes through.
    assert_eq!(server.deploy("web", &demo_command("v2", ""), &[]).ok().json()["status"], "completed");
}

/// Waits for a deployment to end, and says how it ended and what its events say.
fn finished(server: &Server, id: &str, timeout: Duration) -> (serde_json::Value, Vec<String>) {
    let d = server.wait_for(id, timeout);
    let events = server.events(id).iter().map(|e| e["message"].as_str().unwrap_or_default().to_string()).collect();
    (d, events)
}

/// The canary's analysis windows, in the order its events recorded them: each share's
/// window starts (and is logged) once, in a step that was recorded whole or not at all.
fn canary_steps(events: &[String]) -> Vec<String> {
    events.iter().filter(|m| m.contains("canary at ") && m.contains(": analysing for")).cloned().collect()
}

/// v1 serving under load, and a canary of v2 that analyses its first share: the app's
/// port, the load, and the canary's id.
fn canary_under_way(server: &Server) -> (u16, Load, String) {
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");
    let load = Load::start(port, 2);
    let id =
        server.deploy("web", &demo_command("v2", ""), &canary_flags()).ok().json()["id"].as_str().unwrap().to_string();
    wait_until("the canary's first step", Duration::from_secs(60), || {
        let events: Vec<String> =
            server.events(&id).iter().map(|e| e["message"].as_str().unwrap_or_default().to_string()).collect();
        !canary_steps(&events).is_empty()
    });
    (port, load, id)
}

/// A step whose writes were not recorded runs again; one that was recorded never does.
fn assert_each_share_analysed_once(events: &[String]) {
    let steps = canary_steps(events);
    let mut once = steps.clone();
    once.dedup();
    assert!(steps == once && steps.len() >= 2, "each share analysed once, none twice: {events:#?}");
}

#[test]
fn a_canary_waits_out_a_full_disk_and_completes_with_no_step_applied_twice() {
    let Some(disk) = SmallDisk::mount("full disk in a canary", 48) else { return };
    let server = Server::start_on_sqlite(&disk.data_dir(), "process");
    let (port, load, id) = canary_under_way(&server);

    disk.fill();
    let filled = Instant::now();
    wait_until("the server says it is degraded", Duration::from_secs(20), || {
        http_get(&format!("{}/healthz", server.url)).1.starts_with("degraded: ")
    });
    let (_, healthz) = http_get(&format!("{}/healthz", server.url));
    eprintln!("full disk in a canary: /healthz said {healthz:?}");
    std::thread::sleep(Duration::from_secs(20).saturating_sub(filled.elapsed()));
    disk.free();
    let freed = Instant::now();

    let (d, events) = finished(&server, &id, Duration::from_secs(90));
    eprintln!("full disk in a canary: it ended {:?} after the space came back", freed.elapsed());
    assert_eq!(d["status"], "completed", "{d}\n{events:#?}");
    assert!(events.iter().any(|m| m.contains("the deployment waited for the store, and goes on")), "{events:#?}");
    assert_each_share_analysed_once(&events);
    assert_eq!(http_get(&format!("{}/healthz", server.url)).1, "ok\n");
    let report = load.stop();
    eprintln!(
        "a canary through a full disk: {} requests through the router, {} failed",
        report.ok,
        report.failures.len()
    );
    report.assert_no_failures("a canary through a full disk");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
}

#[test]
fn a_canary_waits_out_its_postgres_stopped_for_20_seconds_and_completes() {
    if !postgres_available("postgres stopped in a canary") {
        return;
    }
    // A database of its own: stopping the suite's shared one would stop other tests.
    let pg = Postgres::start();
    let url = pg.database();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), "process", &["--database-url", &url]);
    let (port, load, id) = canary_under_way(&server);

    pg.stop();
    std::thread::sleep(Duration::from_secs(20));
    pg.start_again();
    let started = Instant::now();

    let (d, events) = finished(&server, &id, Duration::from_secs(120));
    eprintln!("postgres stopped in a canary: it ended {:?} after the database came back", started.elapsed());
    assert_eq!(d["status"], "completed", "{d}\n{events:#?}");
    assert_each_share_analysed_once(&events);
    let report = load.stop();
    eprintln!(
        "a canary through a stopped database: {} requests through the router, {} failed",
        report.ok,
        report.failures.len()
    );
    report.assert_no_failures("a canary through a stopped database");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
}

/// Lets this process (and the server it starts) hold `n` open files.
fn allow_open_files(n: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if limit.rlim_cur < n {
        limit.rlim_cur = n.min(limit.rlim_max);
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

#[test]
fn eleven_hundred_slow_clients_are_cut_off_and_healthz_keeps_answering() {
    allow_open_files(8192);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[api]\nheader_timeout = \"6s\"\n").unwrap();
    let server = Server::start_with_flags("process", &["--config", config.path().to_str().unwrap()]);
    let api: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // 1,100 connections, each with half its headers sent, from five loopback addresses
        // (220 each, under the 256 one address may hold).
        let mut slow = Vec::new();
        for i in 0..1100u32 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2 + (i % 5) as u8], 0))).unwrap();
            let mut stream = socket.connect(api).await.unwrap();
            stream.write_all(b"GET /api/apps HTTP/1.1\r\nHost: hivemind\r\n").await.unwrap();
            slow.push(stream);
        }
        let opened = Instant::now();
        // /healthz from another address, while they hang.
        let mut times = Vec::new();
        let url = format!("{}/healthz", server.url);
        for _ in 0..200 {
            let started = Instant::now();
            let (status, _) = tokio::task::spawn_blocking({
                let url = url.clone();
                move || http_get(&url)
            })
            .await
            .unwrap();
            assert_eq!(status, 200);
            times.push(started.elapsed());
        }
        times.sort();
        eprintln!(
            "1,100 slow connections: /healthz p50 {:?}, p99 {:?}, max {:?} (200 requests, within {:?} of opening them)",
            times[100],
            times[197],
            times[199],
            opened.elapsed()
        );
        // Measured while they hung: every one of them still open (a read would block).
        let mut probe = [0u8; 1];
        let open = slow
            .iter()
            .filter(|s| matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
            .count();
        assert_eq!(open, slow.len(), "the slow clients were open while /healthz was measured");
        // Each slow one is closed by the header timeout (6 s), a few seconds later at most.
        let mut buf = [0u8; 256];
        for mut stream in slow {
            let left = Duration::from_secs(15).saturating_sub(opened.elapsed());
            match tokio::time::timeout(left, stream.read(&mut buf)).await {
                Ok(_) => {}
                Err(_) => panic!("a slow connection was still open {:?} after it began", opened.elapsed()),
            }
        }
    });
    let metrics = server.get("/metrics").1;
    let timeouts: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hivemind_api_timeouts_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(timeouts >= 1100, "the timeouts were counted: {timeouts}\n{metrics}");
}
