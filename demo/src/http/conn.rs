//! The reading side of a connection: request heads found in one fixed buffer, and
//! request bodies (Content-Length or chunked) read and discarded.

use std::io::{self, Read};

use super::request::{Body, find_head_end, trim_ows};

/// Largest request head (request line plus headers) accepted; also the read buffer size.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest chunk-size line or trailer line accepted in a chunked body.
const MAX_LINE: usize = 4 * 1024;
/// Largest total size of the trailer section of a chunked body.
const MAX_TRAILERS: usize = MAX_HEAD;

#[derive(Debug)]
pub enum HeadError {
    /// A read failed or timed out.
    Io,
    /// The head did not fit in [`MAX_HEAD`] bytes: 431.
    TooLarge,
    /// The peer closed the connection in the middle of a head.
    Truncated,
}

#[derive(Debug)]
pub enum BodyError {
    /// A read failed or timed out, or the peer closed the connection mid-body.
    Io,
    /// A malformed chunked body: 400.
    Malformed(&'static str),
}

impl From<io::Error> for BodyError {
    fn from(_: io::Error) -> Self {
        BodyError::Io
    }
}

/// The reading side of a connection: a fixed buffer holding bytes read but not yet consumed,
/// which may include pipelined requests.
pub struct Conn<S> {
    stream: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<S: Read> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn { stream, buf: vec![0; MAX_HEAD].into_boxed_slice(), start: 0, end: 0 }
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes, moving pending ones to the front of the buffer if it is full at the
    /// end. Returns 0 at end of stream. Callers make sure the pending bytes are fewer than the
    /// buffer size.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the next request head. Returns its length (see [`Conn::head`]), or `None` if
    /// the peer closed the connection cleanly between requests.
    pub fn next_head(&mut self) -> Result<Option<usize>, HeadError> {
        let mut scanned: usize = 0;
        loop {
            // RFC 9112 section 2.2: ignore empty lines before a request line.
            let blank = self.buffered().iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if blank > 0 {
                self.start += blank;
                scanned = 0;
            }
            if let Some(len) = find_head_end(self.buffered(), scanned.saturating_sub(2)) {
                return Ok(Some(len));
            }
            scanned = self.end - self.start;
            if scanned >= MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            match self.fill() {
                Ok(0) if scanned == 0 => return Ok(None),
                Ok(0) => return Err(HeadError::Truncated),
                Ok(_) => {}
                Err(_) => return Err(HeadError::Io),
            }
        }
    }

    /// The head found by [`Conn::next_head`].
    pub fn head(&self, len: usize) -> &[u8] {
        let end = self.start.saturating_add(len).min(self.end);
        &self.buf[self.start..end]
    }

    /// Marks `len` buffered bytes as used.
    pub fn consume(&mut self, len: usize) {
        self.start = self.start.saturating_add(len).min(self.end);
    }

    /// Reads and throws away a request body.
    pub fn discard_body(&mut self, body: Body) -> Result<(), BodyError> {
        match body {
            Body::None => Ok(()),
            Body::Length(n) => self.discard_exact(n),
            Body::Chunked => self.discard_chunked(),
        }
    }

    fn discard_exact(&mut self, mut remaining: u64) -> Result<(), BodyError> {
        let pending = (self.end - self.start) as u64;
        let take = pending.min(remaining);
        self.start += take as usize;
        remaining -= take;
        while remaining > 0 {
            // The buffer is empty here: read straight into it, but never past the body, so
            // that a pipelined request after it stays in the stream for the buffered path.
            self.start = 0;
            self.end = 0;
            let want = remaining.min(self.buf.len() as u64) as usize;
            let n = match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Consumes one line and returns where it starts in the buffer and its length without the
    /// line ending. The bytes stay valid until the next read.
    fn take_line(&mut self, max: usize) -> Result<(usize, usize), BodyError> {
        loop {
            if let Some(nl) = self.buffered().iter().position(|&b| b == b'\n') {
                let line_start = self.start;
                let mut len = nl;
                if len > 0 && self.buf[line_start + len - 1] == b'\r' {
                    len -= 1;
                }
                self.start += nl + 1;
                return Ok((line_start, len));
            }
            if self.end - self.start >= max {
                return Err(BodyError::Malformed("line too long in chunked body"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    fn discard_chunked(&mut self) -> Result<(), BodyError> {
        loop {
            let (at, len) = self.take_line(MAX_LINE)?;
            let line = &self.buf[at..at + len];
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = parse_hex(trim_ows(size)).ok_or(BodyError::Malformed("invalid chunk size"))?;
            if size == 0 {
                break;
            }
            self.discard_exact(size)?;
            let (_, len) = self.take_line(MAX_LINE)?;
            if len != 0 {
                return Err(BodyError::Malformed("chunk data longer than its size"));
            }
        }
        // Trailer section, ended by an empty line.
        let mut total = 0;
        loop {
            let (_, len) = self.take_line(MAX_LINE)?;
            if len == 0 {
                return Ok(());
            }
            total += len;
            if total > MAX_TRAILERS {
                return Err(BodyError::Malformed("trailers too large"));
            }
        }
    }

    /// Reads and drops whatever the peer still sends, up to `limit` bytes or the first error
    /// (such as a read timeout). Closing a socket with unread data makes the kernel send a
    /// reset, which can destroy the response just written.
    pub fn drain(&mut self, limit: usize) {
        let mut total = 0;
        while total < limit {
            match self.stream.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.start = 0;
        self.end = 0;
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn conn(data: &[u8], step: usize) -> Conn<Trickle> {
        Conn::new(Trickle { data: data.to_vec(), pos: 0, step })
    }

    /// Reads all requests from `conn`, discarding bodies, and returns their paths.
    fn read_all(conn: &mut Conn<Trickle>) -> Vec<String> {
        let mut paths = Vec::new();
        while let Some(len) = conn.next_head().unwrap() {
            let req = parse_head(conn.head(len)).unwrap();
            let (path, body) = (req.path.to_string(), req.body);
            conn.consume(len);
            conn.discard_body(body).unwrap();
            paths.push(path);
        }
        paths
    }

    #[test]
    fn pipelined_requests_with_bodies() {
        let big = "x".repeat(40_000);
        let input = format!(
            "\r\nGET /a HTTP/1.1\r\n\r\n\
             POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
             POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n\
             POST /d HTTP/1.1\r\nContent-Length: {}\r\n\r\n{big}\
             GET /e HTTP/1.1\n\n",
            big.len()
        );
        for step in [1, 3, 7, 64, 1 << 20] {
            let mut c = conn(input.as_bytes(), step);
            assert_eq!(read_all(&mut c), ["/a", "/b", "/c", "/d", "/e"], "step {step}");
        }
    }

    #[test]
    fn big_chunk_then_request() {
        let chunk = "y".repeat(70_000);
        let input = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n\
             GET /next HTTP/1.1\r\n\r\n",
            chunk.len()
        );
        let mut c = conn(input.as_bytes(), 5000);
        assert_eq!(read_all(&mut c), ["/", "/next"]);
    }

    #[test]
    fn malformed_chunked_bodies() {
        for body in ["zz\r\nabc\r\n0\r\n\r\n", "\r\n", "3\r\nabcdef\r\n0\r\n\r\n", "fffffffffffffffffff\r\n"] {
            let input = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
            let mut c = conn(input.as_bytes(), 2);
            let len = c.next_head().unwrap().unwrap();
            c.consume(len);
            assert!(matches!(c.discard_body(Body::Chunked), Err(BodyError::Malformed(_))), "{body:?}");
        }
        // A body cut short is an I/O error, not a malformed one.
        let mut c = conn(b"3\r\nab", 2);
        assert!(matches!(c.discard_body(Body::Chunked), Err(BodyError::Io)));
        let mut c = conn(b"ab", 2);
        assert!(matches!(c.discard_body(Body::Length(3)), Err(BodyError::Io)));
    }

    #[test]
    fn head_limits_and_truncation() {
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut c = conn(huge.as_bytes(), 1000);
        assert!(matches!(c.next_head(), Err(HeadError::TooLarge)));

        let mut c = conn(b"GET / HTTP/1.1\r\nHost:", 4);
        assert!(matches!(c.next_head(), Err(HeadError::Truncated)));

        let mut c = conn(b"\r\n\r\n", 1);
        assert!(matches!(c.next_head(), Ok(None)));
    }
}
