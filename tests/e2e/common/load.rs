//! Load loops through an app's router, counting every failed request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::http_client::{http_get, http_get_as};

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
