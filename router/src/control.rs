//! The control channel between `hivemind serve` (the control plane) and `hivemind router`
//! (the data plane): a Unix socket in the data dir, owner-only, one JSON object a line.
//! The control plane pushes whole tables and pulls counts; a new router process takes the
//! listening sockets themselves over from the old one (`SCM_RIGHTS`), so that no
//! connection waiting to be accepted is ever dropped.

use super::stats::RawCounts;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The socket, the table on disk and the pid file of a data dir's router.
pub struct Paths {
    pub socket: PathBuf,
    pub table: PathBuf,
    pub pid: PathBuf,
    pub log: PathBuf,
}

impl Paths {
    pub fn of(data_dir: &Path) -> Paths {
        Paths {
            socket: data_dir.join("router.sock"),
            table: data_dir.join("router-table.json"),
            pid: data_dir.join("router.pid"),
            log: data_dir.join("router.log"),
        }
    }
}

/// Every app the router serves: where it listens, its split, its backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub apps: Vec<AppTable>,
    /// The shared listeners (`@http`) and where they listen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoints: Vec<(String, SocketAddr)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppTable {
    pub name: String,
    pub addr: SocketAddr,
    pub split: crate::model::Split,
    pub sticky: bool,
    pub goal_header: Option<String>,
    pub backends: Vec<BackendState>,
    /// Host names the app answers to on the entrypoints, under `path_prefix`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default = "root_prefix")]
    pub path_prefix: String,
    /// Plain HTTP to the app's hosts is redirected to HTTPS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_https: bool,
    /// The backends speak h2c.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub h2c: bool,
    /// The key a request shows to choose a version by name (a preview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_key: Option<String>,
}

fn root_prefix() -> String {
    "/".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendState {
    pub id: String,
    pub version: String,
    pub address: String,
    /// What the control plane's probes say.
    pub healthy: bool,
    /// Being drained: it takes no new requests.
    pub draining: bool,
}

/// What the router counted, pulled by the control plane.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Which run of counters these are: a new router process that starts from scratch
    /// (after a crash) counts from zero under a new epoch, one that takes over keeps the
    /// epoch with the counts.
    pub epoch: u64,
    /// Per app and version.
    pub versions: Vec<(String, String, RawCounts)>,
    /// Requests in flight per app and backend (drains wait for them).
    pub in_flight: Vec<(String, String, u64)>,
    /// Requests answered 503 for want of a usable backend, per app.
    pub unroutable: Vec<(String, u64)>,
    /// Backends ejected by passive health since the last pull: (app, replica, version).
    pub ejected: Vec<(String, String, String)>,
}

/// What the control plane (or a new router process) asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who answers: the router process, its version, since when.
    Hello,
    /// Serve `app` on `addr`; answered once the port is bound. Idempotent.
    Listen { app: String, addr: SocketAddr },
    /// Serve `app` on a port the router picks on `ip`.
    ListenAny { app: String, ip: IpAddr },
    /// Serve every app by host on `addr` (the entrypoint `name`); answered once bound.
    ListenEntrypoint { name: String, addr: SocketAddr },
    /// Load the data dir's certificates again (one was added, renewed or removed).
    ReloadCerts,
    /// Answer these ACME HTTP-01 challenges (token → key authorization), and no others.
    Challenges { answers: std::collections::HashMap<String, String> },
    /// The whole table: apps missing from it stop being served. `leader_epoch` is the
    /// lease epoch the control plane leads under (0: one server, on SQLite): the router
    /// refuses a table from an epoch below the highest it has taken, so a deposed leader
    /// that pushes anyway changes nothing (the fencing token, checked by the resource).
    Apply {
        table: Table,
        #[serde(default)]
        leader_epoch: u64,
    },
    /// The table in force, for a control plane that adopts a running router.
    GetTable,
    /// The counts.
    Counts,
    /// From a new router process: hand over the listeners, the table and the counts,
    /// stop accepting, finish what is in flight, and exit.
    Handover,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Hello {
        pid: u32,
        version: String,
        started_at_ms: i64,
    },
    Listening {
        port: u16,
    },
    Applied,
    Table {
        table: Table,
    },
    Counts {
        counts: Counts,
    },
    /// The listeners' file descriptors travel with this answer, in the order of
    /// `listeners`: for each app, `count` sockets.
    Handover {
        table: Table,
        counts: Counts,
        listeners: Vec<(String, usize)>,
    },
    Error {
        message: String,
    },
}

/// One side of a control connection: a line out, a line back.
pub struct Connection {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Connection {
    pub fn new(stream: UnixStream) -> Connection {
        let (read, write) = stream.into_split();
        Connection { reader: BufReader::new(read), writer: write }
    }

    /// Connects to the router of `socket`.
    pub async fn connect(socket: &Path) -> Result<Connection> {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting to the router at {}", socket.display()))?;
        Ok(Connection::new(stream))
    }

    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        Ok(())
    }

    /// The next message; `None` when the other side closed the connection.
    pub async fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&line).context("a control message that does not parse")?))
    }

    /// The connection as a blocking std socket, for what travels with file descriptors.
    pub fn into_std(self) -> Result<std::os::unix::net::UnixStream> {
        let stream = self.reader.into_inner().reunite(self.writer)?;
        Ok(stream.into_std()?)
    }

    /// Asks and waits for the answer, whatever it is; an error is one of the connection.
    pub async fn exchange(&mut self, request: &Request) -> Result<Response> {
        self.send(request).await?;
        match self.receive::<Response>().await? {
            None => bail!("the router closed the control connection"),
            Some(answer) => Ok(answer),
        }
    }

    /// Asks and waits for the answer; an `Error` answer is an error.
    pub async fn ask(&mut self, request: &Request) -> Result<Response> {
        match self.exchange(request).await? {
            Response::Error { message } => bail!("{message}"),
            answer => Ok(answer),
        }
    }
}

/// Sends `body` with `fds` attached: a length, the descriptors as ancillary data, then the
/// body, on a blocking socket.
pub fn send_with_fds(stream: &std::os::unix::net::UnixStream, body: &[u8], fds: &[RawFd]) -> Result<()> {
    use std::io::Write;
    let header = (body.len() as u64).to_le_bytes();
    let mut iov = libc::iovec { iov_base: header.as_ptr() as *mut libc::c_void, iov_len: header.len() };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    // SAFETY: msghdr is plain data; every pointer in it refers to buffers that outlive the
    // call, and the control buffer was sized with CMSG_SPACE for `fds`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg) as *mut RawFd, fds.len());
        }
        if libc::sendmsg(stream.as_raw_fd(), &msg, 0) != header.len() as isize {
            bail!("sending the listeners: {}", std::io::Error::last_os_error());
        }
    }
    (&*stream).write_all(body)?;
    Ok(())
}

/// Receives what `send_with_fds` sent: the body and the descriptors, now ours.
pub fn receive_with_fds(stream: &std::os::unix::net::UnixStream, max_fds: usize) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    use std::io::Read;
    let mut header = [0u8; 8];
    let mut iov = libc::iovec { iov_base: header.as_mut_ptr() as *mut libc::c_void, iov_len: header.len() };
    let space = unsafe { libc::CMSG_SPACE((max_fds * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut fds = Vec::new();
    // SAFETY: as in `send_with_fds`; descriptors the kernel put in the control buffer are
    // new ones of this process, owned once wrapped.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n != header.len() as isize {
            bail!("receiving the listeners: got {n} bytes ({})", std::io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(*data.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let mut body = vec![0u8; u64::from_le_bytes(header) as usize];
    (&*stream).read_exact(&mut body)?;
    Ok((body, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_travel_with_their_message() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        send_with_fds(&a, b"the table", &[listener.as_raw_fd()]).unwrap();
        drop(listener);
        let (body, fds) = receive_with_fds(&b, 8).unwrap();
        assert_eq!(body, b"the table");
        assert_eq!(fds.len(), 1);
        // The same socket, still listening, though the sender closed its copy.
        let taken = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(taken.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        taken.accept().unwrap();
    }
}
