//! Response heads: status reasons, the head written into the caller's buffer, and HTTP
//! dates.

use std::io::Write;

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
