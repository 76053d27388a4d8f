//! The app's answers: the plan of a response, the response itself (with injected latency,
//! errors and failing health), the metrics, and the answer that closes a connection.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::App;
use super::rng::Rng;
use super::routes::{Route, route};
use crate::config::MAX_DELAY_MS;
use crate::http::{self, Body, Conn, ConnectionHeader, ResponseHead, Version};

const TEXT: &str = "text/plain; charset=utf-8";
const METRICS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything needed to answer a request, copied out of the read buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    route: Route,
    head_only: bool,
    pub(super) body: Body,
    pub(super) connection: ConnectionHeader,
    pub(super) expect_continue: bool,
}

impl Plan {
    pub(super) fn new(req: &http::Request<'_>) -> Self {
        let connection = match (req.keep_alive, req.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::None,
        };
        Plan {
            route: route(req.method, req.path, req.query),
            head_only: req.method == "HEAD",
            body: req.body,
            connection,
            expect_continue: req.expect_continue && req.body != Body::None,
        }
    }
}

/// Per-connection scratch space, reused for every request.
pub(super) struct Scratch {
    pub(super) body: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) rng: Rng,
}

impl App {
    /// Builds the response for `plan` into `scratch.out`, sleeping first for injected latency.
    pub(super) fn respond(&self, plan: &Plan, scratch: &mut Scratch) {
        let body = &mut scratch.body;
        body.clear();
        let mut extra = [("X-Demo-Version", self.config.version.as_str()), ("", "")];
        let mut content_type = TEXT;
        let status = match plan.route {
            Route::Version { delay_ms } => {
                let delay = delay_ms.saturating_add(self.config.latency_ms);
                if delay > 0 {
                    thread::sleep(Duration::from_millis(delay));
                }
                if scratch.rng.chance(self.config.error_rate) {
                    body.extend_from_slice(b"injected error\n");
                    500
                } else {
                    body.extend_from_slice(self.config.version.as_bytes());
                    body.push(b'\n');
                    200
                }
            }
            Route::Health if self.config.fail_health => {
                body.extend_from_slice(b"unhealthy");
                503
            }
            Route::Health => {
                body.extend_from_slice(b"ok");
                200
            }
            Route::Metrics => {
                // Count this scrape before rendering, so the numbers include it.
                self.record(200);
                self.write_metrics(body);
                content_type = METRICS_TEXT;
                200
            }
            Route::BadQuery => {
                let _ = writeln!(body, "ms must be a whole number up to {MAX_DELAY_MS}");
                400
            }
            Route::MethodNotAllowed => {
                extra[1] = ("Allow", "GET, HEAD");
                body.extend_from_slice(b"method not allowed\n");
                405
            }
            Route::NotFound => {
                body.extend_from_slice(b"not found\n");
                404
            }
        };
        if plan.route != Route::Metrics {
            self.record(status);
        }
        let headers = if extra[1].0.is_empty() { &extra[..1] } else { &extra[..] };
        scratch.out.clear();
        http::write_head(
            &mut scratch.out,
            &ResponseHead {
                status,
                content_type,
                content_length: body.len(),
                headers,
                connection: plan.connection,
                date: unix_now(),
            },
        );
        if !plan.head_only {
            scratch.out.extend_from_slice(body);
        }
    }

    fn write_metrics(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "# HELP demo_requests_total HTTP requests answered.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total {}\n\
             # HELP demo_errors_total HTTP responses with a 5xx status.\n\
             # TYPE demo_errors_total counter\n\
             demo_errors_total {}\n\
             # HELP demo_info The demo app's version and knobs.\n\
             # TYPE demo_info gauge\n\
             demo_info{{version=\"{}\",fail_health=\"{}\",error_rate=\"{}\",latency_ms=\"{}\"}} 1\n",
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            // Versions are visible ASCII; escape what the exposition format needs escaped.
            self.config.version.replace('\\', "\\\\").replace('"', "\\\""),
            self.config.fail_health,
            self.config.error_rate,
            self.config.latency_ms,
        );
    }

    /// Writes a response that ends the connection (protocol errors).
    pub(super) fn respond_and_close(
        &self,
        conn: &mut Conn<TcpStream>,
        status: u16,
        message: &str,
        scratch: &mut Scratch,
    ) {
        self.record(status);
        scratch.out.clear();
        http::write_head(
            &mut scratch.out,
            &ResponseHead {
                status,
                content_type: TEXT,
                content_length: message.len() + 1,
                headers: &[("X-Demo-Version", self.config.version.as_str())],
                connection: ConnectionHeader::Close,
                date: unix_now(),
            },
        );
        scratch.out.extend_from_slice(message.as_bytes());
        scratch.out.push(b'\n');
        if conn.stream_mut().write_all(&scratch.out).is_ok() {
            // Let the response reach the client before the socket closes: stop sending, then
            // swallow what the client still sends for a moment.
            let stream = conn.stream_mut();
            let _ = stream.shutdown(Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            conn.drain(256 * 1024);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
