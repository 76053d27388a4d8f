//! How much a plugin may hand the host. Everything a plugin says is stored or shown to
//! people, so every string and every piece of state has a ceiling; a string over its
//! ceiling is cut and marked (`… [truncated, N bytes]`), a state write over its ceiling
//! is refused. The same figures are documented in the contract (`wit/v0.1.1/plugin.wit`)
//! and the book.

/// A failure or approval reason (`step-outcome`, `validate`, a hook's verdict), and the
/// host's description of a trap.
pub const REASON_BYTES: usize = 4096;
/// A progress message (`progress.report`).
pub const MESSAGE_BYTES: usize = 1024;
/// One line of the event log (`progress.log`).
pub const LOG_LINE_BYTES: usize = 2000;
/// Log lines one step or one hook run may write.
pub const LOG_LINES_PER_CALL: usize = 100;
/// A plugin's one-line description (`info`).
pub const DESCRIPTION_BYTES: usize = 200;
/// A plugin's version string (`info`).
pub const VERSION_BYTES: usize = 64;

/// One state value (`state.set`).
pub const STATE_VALUE_BYTES: usize = 1 << 20;
/// All of a deployment's state together.
pub const STATE_TOTAL_BYTES: usize = 4 << 20;
/// Keys a deployment's state may hold.
pub const STATE_KEYS: usize = 64;
/// One state key.
pub const STATE_KEY_BYTES: usize = 256;

/// Replicas one `containers.scale` call may ask for.
pub const SCALE_REPLICAS: u32 = 100;
/// A job's command line (`jobs.run-job`).
pub const JOB_COMMAND_BYTES: usize = 64 << 10;
/// A request body a hook sends (`http.post-json`).
pub const HTTP_BODY_BYTES: usize = 1 << 20;

/// `text` cut to at most `max` bytes (at a character boundary), with a note of how long
/// it was when it was cut.
pub fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated, {} bytes]", &text[..end], text.len())
}

/// Whether writing `len` bytes under `key` keeps a deployment's state within its limits,
/// given the size of every key it holds (`sizes`); the refusal says which limit and what
/// to do. Shared by the server's `state` capability and `plugin test`'s.
pub fn check_state_write(
    mut sizes: std::collections::HashMap<String, usize>,
    key: &str,
    len: usize,
) -> Result<(), String> {
    let shown = bounded(key.to_string(), 64);
    if key.len() > STATE_KEY_BYTES {
        return Err(format!("state.set: a key may be at most {STATE_KEY_BYTES} bytes; `{shown}` has {}", key.len()));
    }
    if len > STATE_VALUE_BYTES {
        return Err(format!(
            "state.set: a value may hold at most 1 MiB; `{shown}` has {len} bytes (keep less, or spread it over keys: \
             a deployment's state holds at most {STATE_KEYS} keys and 4 MiB in all)"
        ));
    }
    if !sizes.contains_key(key) && sizes.len() >= STATE_KEYS {
        return Err(format!(
            "state.set: a deployment's state holds at most {STATE_KEYS} keys, and `{shown}` would be one more; reuse keys"
        ));
    }
    sizes.insert(key.to_string(), len);
    let total: usize = sizes.values().sum();
    if total > STATE_TOTAL_BYTES {
        return Err(format!(
            "state.set: a deployment's state holds at most 4 MiB in all, and writing {len} bytes under `{shown}` would make it {total}; keep less"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(bounded("canary failed".into(), 100), "canary failed");
    }

    #[test]
    fn long_text_is_cut_and_says_how_long_it_was() {
        let cut = bounded("x".repeat(10 << 20), 4096);
        assert!(cut.starts_with(&"x".repeat(4096)));
        assert!(cut.ends_with("… [truncated, 10485760 bytes]"), "{}", &cut[4090..]);
        assert!(cut.len() < 4200);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let cut = bounded("é".repeat(100), 5);
        assert!(cut.starts_with("éé…"), "{cut}");
    }
}
