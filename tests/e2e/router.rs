//! The traffic router, driven as the engine drives it, with real HTTP: real demo app
//! processes (or tiny raw-socket backends where a test needs to see or hold the bytes)
//! behind the real proxy on a real port.

use hivemind::router::{BackendSpec, DrainState, Router, RouterEvent};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A demo app process answering `text` on `/`.
struct Demo {
    child: Child,
    address: String,
}

impl Demo {
    fn start(text: &str) -> Demo {
        let port = free_port();
        let child = Command::new(crate::common::demo_binary())
            .arg(text)
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the demo app did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Demo { child, address }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A router serving app `app` on a free port, with the given backends all healthy.
async fn router_with(
    app: &str,
    backends: &[(&str, &str, &Demo)],
) -> (Arc<Router>, u16, tokio::sync::mpsc::UnboundedReceiver<RouterEvent>) {
    let (router, events) = Router::with_events();
    let router = Arc::new(router);
    let port = free_port();
    router.listen(app, SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    set_backends(&router, app, backends);
    (router, port, events)
}

fn set_backends(router: &Router, app: &str, backends: &[(&str, &str, &Demo)]) {
    let specs: Vec<BackendSpec> = backends
        .iter()
        .map(|(id, version, demo)| BackendSpec {
            id: id.to_string(),
            version: version.to_string(),
            address: demo.address.clone(),
        })
        .collect();
    router.set_backends(app, &specs);
    for (id, _, _) in backends {
        router.set_healthy(app, id, true);
    }
}

fn split(pairs: &[(&str, u32)]) -> hivemind::model::Split {
    hivemind::model::Split::new(pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect()).unwrap()
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.text().await.unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_80_split_lands_within_two_points_and_is_smooth() {
    let (a, b) = (Demo::start("v1"), Demo::start("v2"));
    let (router, port, _) = router_with("split", &[("a", "v1", &a), ("b", "v2", &b)]).await;
    router.set_split("split", split(&[("v1", 20), ("v2", 80)]), false);
    let client = crate::common::reqwest_client();
    let url = format!("http://127.0.0.1:{port}/");
    let mut seen = Vec::with_capacity(5000);
    for _ in 0..5000 {
        seen.push(get_text(&client, &url).await);
    }
    let v1 = seen.iter().filter(|v| *v == "v1").count() as f64 / seen.len() as f64;
    assert!((v1 - 0.20).abs() <= 0.02, "v1 got {:.1}%", v1 * 100.0);
    // Smooth: every window of 50 requests holds close to 10 for v1, not bursts.
    for window in seen.windows(50).step_by(25) {
        let n = window.iter().filter(|v| *v == "v1").count();
        assert!((8..=12).contains(&n), "a window of 50 held {n} v1 requests");
    }
    let s = router.stats("split", "v1").unwrap();
    assert_eq!(s.status_2xx, seen.iter().filter(|v| *v == "v1").count() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_clients_keep_their_variant_and_a_header_forces_one() {
    let (a, b) = (Demo::start("red"), Demo::start("blue"));
    let (router, port, _) = router_with("ab", &[("a", "red", &a), ("b", "blue", &b)]).await;
    router.set_split("ab", split(&[("red", 50), ("blue", 50)]), true);
    let client = crate::common::reqwest_client();
    let url = format!("http://127.0.0.1:{port}/");
    let mut per_variant: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let first = client.get(&url).send().await.unwrap();
        let cookie =
            first.headers().get("set-cookie").expect("the router sets a sticky cookie").to_str().unwrap().to_string();
        assert!(cookie.starts_with("hivemind_client=") && cookie.contains("HttpOnly"), "{cookie}");
        let variant = first.text().await.unwrap().trim().to_string();
        let pair = cookie.split(';').next().unwrap().to_string();
        for _ in 0..100 {
            let response = client.get(&url).header("cookie", &pair).send().await.unwrap();
            assert!(response.headers().get("set-cookie").is_none(), "a known client gets no new cookie");
            assert_eq!(response.text().await.unwrap().trim(), variant, "a sticky client changed variant");
        }
        *per_variant.entry(variant).or_default() += 1;
    }
    assert_eq!(per_variant.len(), 2, "30 clients all landed on one variant: {per_variant:?}");
    // A variant chosen by name: with the app's preview key only.
    router.set_preview_key("ab", Some("k3y"));
    for _ in 0..20 {
        let forced = client
            .get(&url)
            .header("x-hivemind-variant", "blue")
            .header("x-hivemind-preview", "k3y")
            .send()
            .await
            .unwrap();
        assert_eq!(forced.text().await.unwrap().trim(), "blue");
    }
    router.set_split("ab", split(&[("red", 100), ("blue", 0)]), false);
    for _ in 0..20 {
        let without = client.get(&url).header("x-hivemind-variant", "blue").send().await.unwrap();
        assert_eq!(without.text().await.unwrap().trim(), "red", "the header alone reaches no 0% variant");
        let wrong = client
            .get(&url)
            .header("x-hivemind-variant", "blue")
            .header("x-hivemind-preview", "k3z")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.text().await.unwrap().trim(), "red");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_a_slow_request_which_succeeds() {
    let (a, b) = (Demo::start("old"), Demo::start("new"));
    let (router, port, _) = router_with("drain", &[("a", "v1", &a)]).await;
    router.set_split("drain", split(&[("v1", 100)]), false);
    let client = crate::common::reqwest_client();
    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}/slow?ms=1500");
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.stats("drain", "v1").unwrap().in_flight == 0 {
        assert!(Instant::now() < deadline, "the slow request never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    set_backends(&router, "drain", &[("a", "v1", &a), ("b", "v1", &b)]);
    assert!(router.drain("drain", "a", Duration::from_secs(30)));
    assert_eq!(router.drain_state("drain", "a"), Some(DrainState::Draining(1)));
    for _ in 0..10 {
        assert_eq!(
            get_text(&client, &format!("http://127.0.0.1:{port}/")).await,
            "new",
            "a drained backend got a new request"
        );
    }
    let (status, body) = slow.await.unwrap();
    assert_eq!((status, body.trim()), (200, "old"));
    assert_eq!(router.drain_state("drain", "a"), Some(DrainState::Drained));

    // A drain whose deadline passes first says so.
    set_backends(&router, "drain", &[("b", "v1", &b)]);
    let slow = tokio::spawn({
        let url = format!("http://127.0.0.1:{port}/slow?ms=800");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    });
    while router.stats("drain", "v1").unwrap().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.drain("drain", "b", Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(router.drain_state("drain", "b"), Some(DrainState::TimedOut));
    assert_eq!(slow.await.unwrap(), 200, "a timed-out drain does not cut the request");
}

/// GETs `/` from `tasks` concurrent keep-alive clients until `stop`; returns
/// (successes, failures with what they were).
fn load(port: u16, tasks: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let ok = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (stop, ok) = (stop.clone(), ok.clone());
            handles.push(tokio::spawn(async move {
                let client = crate::common::reqwest_client();
                let mut failures = Vec::new();
                let started = Instant::now();
                // Bounded: stops when told, or after 60 s whatever happens.
                while !stop.load(Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    match client.get(format!("http://127.0.0.1:{port}/")).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            ok.fetch_add(1, Relaxed);
                        }
                        Ok(r) => failures.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                failures
            }));
        }
        let mut failures = Vec::new();
        for h in handles {
            failures.extend(h.await.unwrap());
        }
        (ok.load(Relaxed), failures)
    })
}

/// Waits for a load loop and fails the test if any request failed; returns the successes.
async fn expect_no_failures(load: tokio::task::JoinHandle<(u64, Vec<String>)>) -> u64 {
    let (ok, failures) = load.await.unwrap();
    let total = ok + failures.len() as u64;
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_v1_to_v2_and_back_twenty_times_under_load_loses_nothing() {
    let demos = [Demo::start("v1"), Demo::start("v1"), Demo::start("v2"), Demo::start("v2")];
    let (router, port, _) = router_with(
        "switch",
        &[("a", "v1", &demos[0]), ("b", "v1", &demos[1]), ("c", "v2", &demos[2]), ("d", "v2", &demos[3])],
    )
    .await;
    router.set_split("switch", split(&[("v1", 100)]), false);
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(port, 4, stop.clone());
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        router.set_split("switch", split(&[("v2", 100)]), false);
        tokio::time::sleep(Duration::from_millis(40)).await;
        router.set_split("switch", split(&[("v1", 100)]), false);
    }
    stop.store(true, Relaxed);
    let ok = expect_no_failures(load).await;
    let (v1, v2) = (router.stats("switch", "v1").unwrap(), router.stats("switch", "v2").unwrap());
    assert!(v1.status_2xx > 0 && v2.status_2xx > 0, "both versions served: {v1:?} {v2:?}");
    eprintln!("{ok} requests through 40 switches, 0 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_costs_no_failed_request_and_is_ejected() {
    let mut demos = [Demo::start("v1"), Demo::start("v1"), Demo::start("v1")];
    let (router, port, mut events) =
        router_with("kill", &[("a", "v1", &demos[0]), ("b", "v1", &demos[1]), ("c", "v1", &demos[2])]).await;
    router.set_split("kill", split(&[("v1", 100)]), false);
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(port, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    demos[1].kill(); // SIGKILL, while requests are in flight and connections pooled
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Relaxed);
    expect_no_failures(load).await;
    let event = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.expect("the engine is told").unwrap();
    assert_eq!(event, RouterEvent::Ejected { app: "kill".into(), replica: "b".into(), version: "v1".into() });
    assert!(router.stats("kill", "v1").unwrap().connection_errors > 0, "the dead replica was tried and counted");
}

/// A backend on a raw socket that answers one exchange with `respond(request head)`.
fn raw_backend(respond: impl Fn(&str, &mut TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            respond(&head, &mut stream);
        }
    });
    address
}

fn raw_router_backend(router: &Router, app: &str, version: &str, address: String) {
    router.set_backends(app, &[BackendSpec { id: format!("{app}-raw"), version: version.into(), address }]);
    router.set_healthy(app, &format!("{app}-raw"), true);
    router.set_split(app, split(&[(version, 100)]), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_and_bodies_stream() {
    let router = Router::new();
    let port = free_port();
    router.listen("raw", SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();

    // The backend echoes the request head it received.
    let echo = raw_backend(|head, stream| {
        let body = head.to_string();
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    });
    raw_router_backend(&router, "raw", "v1", echo);
    let head = crate::common::reqwest_client()
        .get(format!("http://127.0.0.1:{port}/x?y=1"))
        .header("host", "shop.example")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("GET /x?y=1 HTTP/1.1"), "{head}");
    assert!(lower.contains("x-forwarded-for: 127.0.0.1"), "{head}");
    assert!(lower.contains("x-forwarded-proto: http"), "{head}");
    assert!(lower.contains("x-forwarded-host: shop.example"), "{head}");

    // The backend sends a first chunk, then waits until the client has it before it
    // finishes: a proxy that buffered would never deliver it, and the test times out.
    let (got_first, wait_first) = std::sync::mpsc::channel::<()>();
    let wait_first = std::sync::Mutex::new(wait_first);
    let streaming = raw_backend(move |_, stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
        let _ = stream.flush();
        let _ = wait_first.lock().unwrap().recv_timeout(Duration::from_secs(10));
        let _ = stream.write_all(b"6\r\nsecond\r\n0\r\n\r\n");
    });
    raw_router_backend(&router, "raw", "v1", streaming);
    let mut response = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first chunk arrives before the body ends")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first");
    got_first.send(()).unwrap();
    assert_eq!(&response.chunk().await.unwrap().unwrap()[..], b"second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_passed_through() {
    let router = Router::new();
    let port = free_port();
    router.listen("ws", SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let echo = raw_backend(|head, stream| {
        assert!(head.to_ascii_lowercase().contains("upgrade: echo"), "{head}");
        let _ = stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
        let mut buf = [0u8; 64];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    raw_router_backend(&router, "ws", "v1", echo);
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        for word in ["ping", "pong", "hello"] {
            stream.write_all(word.as_bytes()).unwrap();
            let mut buf = vec![0u8; word.len()];
            reader.read_exact(&mut buf).unwrap();
            assert_eq!(buf, word.as_bytes());
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_route_to_is_a_503_naming_the_app_and_a_dead_backend_a_502_and_both_are_counted() {
    let router = Router::new();
    let port = free_port();
    router.listen("empty", SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let response = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.text().await.unwrap().contains("no healthy backend for app empty"));

    // A backend whose port is closed, and a POST (not retried): 502.
    let closed = format!("127.0.0.1:{}", free_port());
    raw_router_backend(&router, "empty", "v1", closed);
    let response =
        crate::common::reqwest_client().post(format!("http://127.0.0.1:{port}/")).body("x").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let stats = router.stats("empty", "v1").unwrap();
    assert_eq!((stats.connection_errors, stats.status_5xx), (1, 1));
    let metrics = router.prometheus();
    assert!(metrics.contains("hivemind_router_unroutable_total{app=\"empty\"} 1"), "{metrics}");
    assert!(
        metrics.contains("hivemind_router_requests_total{app=\"empty\",version=\"v1\",class=\"5xx\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hivemind_router_connection_errors_total{app=\"empty\",version=\"v1\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_with_the_goal_header_are_counted_per_version() {
    let router = Router::new();
    let port = free_port();
    router.listen("goal", SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    // Every other answer converts.
    let n = Arc::new(AtomicU64::new(0));
    let backend = raw_backend(move |_, stream| {
        let goal = if n.fetch_add(1, Relaxed).is_multiple_of(2) { "X-Converted: 1\r\n" } else { "" };
        let _ = write!(stream, "HTTP/1.1 200 OK\r\n{goal}Content-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    raw_router_backend(&router, "goal", "v1", backend);
    router.set_goal_header("goal", Some("x-converted"));
    for _ in 0..10 {
        reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap().text().await.unwrap();
    }
    let s = router.stats("goal", "v1").unwrap();
    assert_eq!((s.requests, s.goals), (10, 5));
}

/// A port free now, for a router of a test's own.
fn free_port() -> u16 {
    hivemind::ports::reserve(std::net::IpAddr::from([127, 0, 0, 1])).unwrap().port()
}
