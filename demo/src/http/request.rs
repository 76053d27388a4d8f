//! Request heads: the request line and headers parsed, strictly, into a [`Request`], and
//! the small byte-level helpers that parsing uses.

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

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
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
}
