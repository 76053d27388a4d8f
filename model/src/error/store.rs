//! A store that cannot be written is the operator's to fix (a full disk, a database that
//! is down), not a failure of the server: it is told apart from other errors, so that the
//! API answers it with a 503 that names the cause, and the step loops wait it out.

/// Why the store cannot be written, if that is what `e` is, with what to do about it.
pub fn store_unavailable(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_cause(io, false);
        }
        #[cfg(feature = "sqlx")]
        if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
            return sqlx_cause(db);
        }
        None
    })
}

/// A full or read-only disk; and, for the database's own connection (`database`), one
/// that fails.
fn io_cause(e: &std::io::Error, database: bool) -> Option<String> {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => {
            Some(format!("the disk of the data dir is full ({e}); free space on it (old logs, images)"))
        }
        ReadOnlyFilesystem => Some(format!("the data dir's filesystem is read-only ({e}); remount it read-write")),
        ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | HostUnreachable | NetworkUnreachable
        | UnexpectedEof | BrokenPipe
            if database =>
        {
            Some(format!("the database does not answer ({e}); start it, or check the network to it"))
        }
        _ => None,
    }
}

#[cfg(feature = "sqlx")]
fn sqlx_cause(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Io(io) => io_cause(io, true),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Some(format!("the database does not answer ({e}); start it, or check the network to it"))
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite's extended codes (SQLITE_IOERR_WRITE is 778) keep the primary code in
            // their low byte; Postgres's SQLSTATEs are five characters, never a number alone.
            let code = match code.parse::<u32>() {
                Ok(n) if code.len() < 5 => (n & 0xff).to_string(),
                _ => code.into_owned(),
            };
            match code.as_str() {
                // SQLite's SQLITE_FULL, and Postgres's disk_full.
                "13" | "53100" => Some(format!(
                    "the disk of the database is full ({}); free space on it (old logs, images)",
                    db.message()
                )),
                // SQLite's SQLITE_IOERR and SQLITE_READONLY, Postgres's I/O error.
                "10" | "8" | "58030" => {
                    Some(format!("the database's disk failed a write ({}); check the disk", db.message()))
                }
                // Postgres shutting down, starting, or out of connections (class 08: the
                // connection itself; 53300: too many connections; 57P0x: shutdown).
                c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => Some(format!(
                    "the database does not answer ({}); start it, or check the network to it",
                    db.message()
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::store_unavailable;

    #[test]
    fn a_full_disk_is_the_operators_not_an_internal_error() {
        let full = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::StorageFull)).context("writing");
        assert!(store_unavailable(&full).unwrap().contains("disk of the data dir is full"));
        let other = anyhow::anyhow!("a bug");
        assert_eq!(store_unavailable(&other), None);
    }
}
