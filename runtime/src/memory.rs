//! An in-memory driver for the engine's unit tests: a replica is a task in this process
//! answering HTTP on a loopback port, so the real prober, router and engine work on it
//! unchanged, with no processes or containers. The "image" says how it behaves:
//!
//! - `ok`: answers 200 to everything;
//! - `sick`: answers 503 (never healthy);
//! - `crash`: starts and exits at once;
//! - `slow-start:MS`: takes MS milliseconds to start, then answers 200.
//!
//! A test can also break an image (its next replicas crash at start) and make a running
//! replica answer 503. Replicas run on a runtime of the driver's own, so they outlive an
//! engine whose runtime is dropped (a crash, in a test).

use super::{Driver, JobOutcome, StartSpec, Started};
use anyhow::{Result, bail};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct MemoryDriver {
    /// Where replicas run; shut down in the background when the driver goes (a runtime
    /// may not be dropped inside another's async context).
    runtime: Option<tokio::runtime::Runtime>,
    replicas: Mutex<HashMap<String, Replica>>,
    /// Images whose replicas crash at start, for now.
    broken: Mutex<std::collections::HashSet<String>>,
}

struct Replica {
    /// The replica id and server id it was started with (what `owned` reports).
    id: String,
    server_id: String,
    task: Option<tokio::task::JoinHandle<()>>,
    /// What it answers now.
    status: Arc<AtomicU16>,
}

impl Default for MemoryDriver {
    fn default() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("building the memory driver's runtime");
        MemoryDriver { runtime: Some(runtime), replicas: Mutex::new(HashMap::new()), broken: Default::default() }
    }
}

impl Drop for MemoryDriver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How an image behaves.
enum Behaviour {
    Answer(u16),
    Crash,
    SlowStart(u64),
}

fn behaviour(image: &str) -> Option<Behaviour> {
    match image {
        "ok" => Some(Behaviour::Answer(200)),
        "sick" => Some(Behaviour::Answer(503)),
        "crash" => Some(Behaviour::Crash),
        _ => image.strip_prefix("slow-start:").and_then(|ms| ms.parse().ok()).map(Behaviour::SlowStart),
    }
}

impl MemoryDriver {
    /// A replica this server "started" that no record owns, as a crash between starting
    /// and recording leaves.
    pub fn plant_orphan(&self, id: &str, server_id: &str) -> String {
        let handle = format!("mem-{:08x}", fastrand::u32(..));
        let replica =
            Replica { id: id.to_string(), server_id: server_id.to_string(), task: None, status: Default::default() };
        self.replicas.lock().unwrap().insert(handle.clone(), replica);
        handle
    }

    /// From now on (or no longer), replicas of `image` crash as they start.
    pub fn break_image(&self, image: &str, broken: bool) {
        let mut set = self.broken.lock().unwrap();
        if broken {
            set.insert(image.to_string());
        } else {
            set.remove(image);
        }
    }

    /// Makes a running replica answer `status` from now on.
    pub fn answer_with(&self, handle: &str, status: u16) {
        if let Some(r) = self.replicas.lock().unwrap().get(handle) {
            r.status.store(status, Ordering::Relaxed);
        }
    }

    /// Kills a replica behind the engine's back, as `kill -9` would.
    pub fn kill(&self, handle: &str) {
        if let Some(task) = self.replicas.lock().unwrap().get_mut(handle).and_then(|r| r.task.take()) {
            task.abort();
        }
    }

    /// Whether a handle is known to the driver at all (running or not).
    pub fn knows(&self, handle: &str) -> bool {
        self.replicas.lock().unwrap().contains_key(handle)
    }
}

/// Answers every request on `listener` with what `status` holds at the time.
async fn answer(listener: tokio::net::TcpListener, status: Arc<AtomicU16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let status = status.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            let mut seen = Vec::new();
            loop {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buffer[..n]),
                }
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    let status = status.load(Ordering::Relaxed);
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 3\r\n\r\nmem");
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn check_image(&self, image: &str, _: crate::model::PullPolicy) -> Result<()> {
        if behaviour(image).is_none() {
            bail!("memory image `{image}` is not one of ok, sick, crash, slow-start:MS");
        }
        Ok(())
    }

    fn supports_health_port(&self) -> bool {
        false
    }

    fn unsupported(&self, _: &crate::model::Resources) -> Vec<String> {
        Vec::new()
    }

    async fn start(&self, spec: &StartSpec) -> Result<Started> {
        let mut behaviour = behaviour(&spec.image).ok_or_else(|| anyhow::anyhow!("unknown image {}", spec.image))?;
        if self.broken.lock().unwrap().contains(&spec.image) {
            behaviour = Behaviour::Crash;
        }
        let status = match behaviour {
            Behaviour::SlowStart(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                200
            }
            Behaviour::Answer(status) => status,
            Behaviour::Crash => 0,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?.to_string();
        let runtime = self.runtime.as_ref().expect("the driver's runtime runs until it is dropped");
        let answers = Arc::new(AtomicU16::new(status));
        let task = (status != 0).then(|| {
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).expect("a loopback listener");
            runtime.spawn(answer(listener, answers.clone()))
        });
        let handle = format!("mem-{:08x}", fastrand::u32(..));
        let replica = Replica { id: spec.id.clone(), server_id: spec.server_id.clone(), task, status: answers };
        self.replicas.lock().unwrap().insert(handle.clone(), replica);
        Ok(Started { handle, health_address: address.clone(), address })
    }

    async fn stop(&self, handle: &str, _grace: Duration) -> Result<()> {
        if let Some(mut r) = self.replicas.lock().unwrap().remove(handle)
            && let Some(task) = r.task.take()
        {
            task.abort();
        }
        Ok(())
    }

    async fn is_running(&self, handle: &str) -> bool {
        self.replicas.lock().unwrap().get(handle).is_some_and(|r| r.task.as_ref().is_some_and(|t| !t.is_finished()))
    }

    async fn exit_status(&self, handle: &str) -> Option<String> {
        let replicas = self.replicas.lock().unwrap();
        match replicas.get(handle) {
            Some(r) if r.task.as_ref().is_none_or(|t| t.is_finished()) => Some("exited with code 1".into()),
            _ => None,
        }
    }

    async fn logs(&self, _handle: &str, _lines: usize) -> String {
        String::new()
    }

    async fn run_job(&self, _spec: &StartSpec, _command: &str, _timeout: Duration) -> Result<JobOutcome> {
        Ok(JobOutcome { exit_code: Some(0), output: String::new() })
    }

    async fn owned(&self, server_id: &str) -> Vec<(String, String)> {
        let replicas = self.replicas.lock().unwrap();
        replicas.iter().filter(|(_, r)| r.server_id == server_id).map(|(h, r)| (r.id.clone(), h.clone())).collect()
    }
}
