//! Connections: the accept loop, one thread per connection, and the request loop of one
//! connection (keep-alive, pipelining, protocol errors).

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::App;
use super::respond::{Plan, Scratch};
use super::rng::Rng;
use crate::http::{self, Conn, ConnectionHeader, HeadError};

/// How long a connection may sit idle, or stall mid-request, before it is closed. Longer than
/// the usual client pool idle timeouts (hyper: 90 s), so clients close first.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connection threads need little stack: all buffers live on the heap.
const THREAD_STACK: usize = 256 * 1024;

/// Serves one connection until the client closes it, asks to, or misbehaves.
pub fn handle_connection(stream: TcpStream, app: &App) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut conn = Conn::new(stream);
    let mut scratch = Scratch { body: Vec::with_capacity(1024), out: Vec::with_capacity(2048), rng: Rng::seeded() };
    loop {
        let len = match conn.next_head() {
            Ok(Some(len)) => len,
            Ok(None) | Err(HeadError::Io | HeadError::Truncated) => return,
            Err(HeadError::TooLarge) => {
                let msg = "request head too large";
                return app.respond_and_close(&mut conn, 431, msg, &mut scratch);
            }
        };
        let plan = http::parse_head(conn.head(len)).map(|req| Plan::new(&req));
        conn.consume(len);
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                return app.respond_and_close(&mut conn, e.status(), e.message(), &mut scratch);
            }
        };
        if plan.expect_continue && conn.stream_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        match conn.discard_body(plan.body) {
            Ok(()) => {}
            Err(http::BodyError::Malformed(msg)) => {
                return app.respond_and_close(&mut conn, 400, msg, &mut scratch);
            }
            Err(http::BodyError::Io) => return,
        }
        app.respond(&plan, &mut scratch);
        if conn.stream_mut().write_all(&scratch.out).is_err() {
            return;
        }
        if plan.connection == ConnectionHeader::Close {
            let _ = conn.stream_mut().shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: TcpListener, app: Arc<App>) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let app = Arc::clone(&app);
                let spawned =
                    thread::Builder::new().stack_size(THREAD_STACK).spawn(move || handle_connection(stream, &app));
                if let Err(e) = spawned {
                    // The connection is dropped with the closure.
                    eprintln!("hivemind-demo: cannot start a connection thread: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted => {}
                _ => {
                    // For example EMFILE: back off instead of spinning.
                    eprintln!("hivemind-demo: accept failed: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
            },
        }
    }
}
