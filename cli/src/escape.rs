//! What the server sends, made safe for a terminal. Event messages, job output and a
//! plugin's words come from code the user did not write; printed raw, an escape sequence
//! in them could move the cursor, retitle or clear the user's terminal.

use std::borrow::Cow;

/// `println!` for text that holds what the server sent (event messages, job output, a
/// plugin's words, names): control characters are shown escaped, so that nobody's output
/// can move the cursor, retitle or clear the user's terminal.
macro_rules! say {
    () => { println!() };
    ($($arg:tt)*) => { println!("{}", $crate::escape::escaped(&format!($($arg)*))) };
}
pub(crate) use say;

/// `text` with every control character but the newline and the tab written as an escape
/// (`\x1b`, `\u{202e}`), bidirectional overrides included (they reorder what is shown).
pub fn escaped(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escaped("plain text\nand a\ttab"), "plain text\nand a\ttab");
        assert_eq!(escaped("\x1b]0;owned\x07\x1b[2J"), "\\x1b]0;owned\\x07\\x1b[2J");
        assert_eq!(escaped("a\rb\u{9b}c"), "a\\x0db\\x9bc");
        assert_eq!(escaped("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
    }
}
