//! A small, strict HTTP/1.1 server-side codec: request-head parsing, request-body framing
//! (Content-Length and chunked, read and discarded) and response writing.
//!
//! Nothing here panics on input and nothing allocates per request: a connection owns one
//! fixed read buffer and the caller reuses one output buffer.

use std::io::{self, Read, Write};

/// Largest request head (request line plus headers) accepted; also the read buffer size.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest chunk-size line or trailer line accepted in a chunked body.
const MAX_LINE: usize = 4 * 1024;
/// Largest total size of the trailer section of a chunked body.
const MAX_TRAILERS: usize = MAX_HEAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path of the target, without the query (absolute-form targets are reduced to it).
    pub path: &'a str,
    /// The query without the `?`, empty if none.
    pub query: &'a str,
    pub version: Version,
    pub body: Body,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed request: 400.
    BadRequest(&'static str),
    /// An HTTP version other than 1.0 and 1.1: 505.
    VersionNotSupported,
    /// A transfer coding other than chunked: 501.
    NotImplemented(&'static str),
}

impl ParseError {
    pub fn status(self) -> u16 {
        match self {
            ParseError::BadRequest(_) => 400,
            ParseError::VersionNotSupported => 505,
            ParseError::NotImplemented(_) => 501,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ParseError::BadRequest(msg) | ParseError::NotImplemented(msg) => msg,
            ParseError::VersionNotSupported => "HTTP version not supported",
        }
    }
}

/// Finds the end of a request head in `buf`: returns the length of the head including the
/// empty line that ends it. Bare LF line endings are accepted. `from` lets a caller resume a
/// scan; pass the previously scanned length minus 2 (saturating).
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + buf[i..].iter().position(|&b| b == b'\n')?;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Parses a complete request head as delimited by [`find_head_end`].
pub fn parse_head(head: &[u8]) -> Result<Request<'_>, ParseError> {
    use ParseError::BadRequest;

    let mut lines = head.split(|&b| b == b'\n').map(|line| match line {
        [rest @ .., b'\r'] => rest,
        line => line,
    });

    // Request line: method SP request-target SP HTTP-version.
    let line = lines.next().unwrap_or_default();
    if !line.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
        return Err(BadRequest("invalid character in request line"));
    }
    // Only ASCII from here on, so the conversion cannot fail.
    let line = std::str::from_utf8(line).map_err(|_| BadRequest("invalid request line"))?;
    let (method, rest) = line.split_once(' ').ok_or(BadRequest("malformed request line"))?;
    let (target, version) = rest.rsplit_once(' ').ok_or(BadRequest("malformed request line"))?;
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(BadRequest("invalid method"));
    }
    if target.is_empty() || target.contains(' ') {
        return Err(BadRequest("invalid request target"));
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v if is_http_version(v) => return Err(ParseError::VersionNotSupported),
        _ => return Err(BadRequest("invalid HTTP version")),
    };
    let (path, query) = split_target(target)?;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;

    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(BadRequest("obsolete header line folding"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(BadRequest("header line without a colon"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            return Err(BadRequest("invalid header name"));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(BadRequest("invalid character in header value"));
        }

        if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|&b| b == b',') {
                let n = parse_decimal(trim_ows(part)).ok_or(BadRequest("invalid Content-Length"))?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if transfer_encoding {
                return Err(BadRequest("repeated Transfer-Encoding"));
            }
            transfer_encoding = true;
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(ParseError::NotImplemented("unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    if chunked && content_length.is_some() {
        return Err(BadRequest("both Content-Length and Transfer-Encoding"));
    }
    if chunked && version == Version::Http10 {
        return Err(BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
    }
    let body = match (chunked, content_length) {
        (true, _) => Body::Chunked,
        (false, Some(0) | None) => Body::None,
        (false, Some(n)) => Body::Length(n),
    };
    let keep_alive = !close && (version == Version::Http11 || keep_alive_token);
    Ok(Request {
        method,
        path,
        query,
        version,
        body,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
    })
}

/// Splits a request target into path and query; absolute-form targets keep only the path.
fn split_target(target: &str) -> Result<(&str, &str), ParseError> {
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else {
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|scheme| target.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)))
            .map(|scheme| scheme.len())
            .ok_or(ParseError::BadRequest("invalid request target"))?;
        let rest = &target[scheme_len..];
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            // "http://host?q" has an empty path, which means "/".
            Some(i) => return Ok(("/", &rest[i + 1..])),
            None => "/",
        }
    };
    let without_fragment = origin.split('#').next().unwrap_or_default();
    Ok(without_fragment.split_once('?').unwrap_or((without_fragment, "")))
}

fn is_http_version(v: &str) -> bool {
    matches!(v.as_bytes(), [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(
        0u64,
        |n, &b| {
            if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
        },
    )
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

/// What the response says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 persistent connection: no header needed.
    None,
    /// HTTP/1.0 client asked for keep-alive.
    KeepAlive,
    Close,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub content_length: usize,
    pub headers: &'a [(&'a str, &'a str)],
    pub connection: ConnectionHeader,
    pub date: u64,
}

/// Appends a response head to `out`.
pub fn write_head(out: &mut Vec<u8>, head: &ResponseHead<'_>) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {} {}\r\nServer: hivemind-demo\r\nDate: ", head.status, reason(head.status));
    write_http_date(out, head.date);
    let _ = write!(out, "\r\nContent-Type: {}\r\nContent-Length: {}\r\n", head.content_type, head.content_length);
    for (name, value) in head.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    match head.connection {
        ConnectionHeader::None => {}
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn write_http_date(out: &mut Vec<u8>, unix_secs: u64) {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7 + 4) as usize % 7],
        day,
        MONTHS[(month - 1) as usize % 12],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard
/// Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Request<'_>, ParseError> {
        let len = find_head_end(head.as_bytes(), 0).expect("complete head");
        assert_eq!(len, head.len(), "head end");
        parse_head(head.as_bytes())
    }

    #[test]
    fn simple_get() {
        let req = parse("GET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            req,
            Request {
                method: "GET",
                path: "/slow",
                query: "ms=50",
                version: Version::Http11,
                body: Body::None,
                keep_alive: true,
                expect_continue: false,
            }
        );
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |head: &str| parse(head).unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
    }

    #[test]
    fn body_framing() {
        let body = |head: &str| parse(head).map(|r| r.body);
        assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), Ok(Body::None));
        assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"), Ok(Body::Length(12)));
        assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n"), Ok(Body::Length(5)));
        assert_eq!(body("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"), Ok(Body::Chunked));
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::BadRequest(_))), "{bad:?}");
        }
        assert_eq!(
            body("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").map_err(ParseError::status),
            Err(501)
        );
    }

    #[test]
    fn expect_continue() {
        let req = parse("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(req.unwrap().expect_continue);
        // HTTP/1.0 clients do not understand 100 Continue.
        let req = parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!req.unwrap().expect_continue);
    }

    #[test]
    fn targets() {
        let target = |t: &str| {
            let head = format!("GET {t} HTTP/1.1\r\n\r\n");
            let req = parse_head(head.as_bytes()).map(|r| (r.path.to_string(), r.query.to_string()));
            req.map_err(|e| e.status())
        };
        let ok = |p: &str, q: &str| Ok((p.to_string(), q.to_string()));
        assert_eq!(target("/"), ok("/", ""));
        assert_eq!(target("/a?b=c&d"), ok("/a", "b=c&d"));
        assert_eq!(target("/a?"), ok("/a", ""));
        assert_eq!(target("/a#frag"), ok("/a", ""));
        assert_eq!(target("http://example.com/health?x=1"), ok("/health", "x=1"));
        assert_eq!(target("HTTP://example.com"), ok("/", ""));
        assert_eq!(target("https://example.com:8443?ms=5"), ok("/", "ms=5"));
        assert_eq!(target("*"), ok("*", ""));
        assert_eq!(target("example.com:443"), Err(400));
        assert_eq!(target("ftp://x/"), Err(400));
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            "GET /\r\n\r\n",
            "GET\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1 \r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.x\r\n\r\n",
            "GET / http/1.1\r\n\r\n",
            "GET /\x01 HTTP/1.1\r\n\r\n",
            "GET /\u{e9} HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\n: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
        ] {
            assert!(matches!(parse_head(bad.as_bytes()), Err(ParseError::BadRequest(_))), "{bad:?}");
        }
        assert_eq!(parse("GET / HTTP/2.0\r\n\r\n").map_err(ParseError::status), Err(505));
    }

    #[test]
    fn header_values_may_hold_obs_text_and_tabs() {
        let head = "GET / HTTP/1.1\r\nX-Name: caf\u{e9}\tbar \r\n\r\n";
        assert!(parse(head).is_ok());
    }

    #[test]
    fn head_end_detection() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nnext", 0), Some(27));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: x\n\n", 0), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r", 0), None);
        assert_eq!(find_head_end(b"", 0), None);
        assert_eq!(find_head_end(b"abc", 10), None);
        // Resuming two bytes before the previous end still sees the terminator.
        let full = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(find_head_end(full, 16 - 2), Some(18));
        // LF-only heads parse too.
        let req = parse_head(b"GET /health HTTP/1.1\nHost: x\n\n").unwrap();
        assert_eq!(req.path, "/health");
    }

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

    #[test]
    fn response_head() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            &ResponseHead {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                content_length: 3,
                headers: &[("X-Demo-Version", "v2")],
                connection: ConnectionHeader::Close,
                date: 784_111_777,
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: hivemind-demo\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
             X-Demo-Version: v2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http_dates() {
        let date = |secs| {
            let mut out = Vec::new();
            write_http_date(&mut out, secs);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(1_709_210_096), "Thu, 29 Feb 2024 12:34:56 GMT");
        assert_eq!(date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }
}
