//! JSON pretty-printed for reading, within the output limit.

use std::io::{self, Write};

/// `text` pretty-printed with two-space indents, at most about `max_chars` characters long
/// (pretty-printing stops there rather than building the whole thing); `None` when it is not
/// valid JSON (a body cut at the size limit, or a server that lies about its type), for the
/// caller to show the text as is.
pub(crate) fn pretty(text: &str, max_chars: usize) -> Option<(String, bool)> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    // Characters are at most 4 bytes: stopping at 4× the limit in bytes always leaves enough
    // for the caller's exact cut by characters.
    let mut out = Bounded { buf: Vec::with_capacity(text.len().min(max_chars) + 64), max: max_chars.saturating_mul(4) };
    let full = serde_json::to_writer_pretty(&mut out, &value).is_ok();
    // serde_json writes whole UTF-8 sequences per call, and the bound cuts between calls.
    let pretty = String::from_utf8(out.buf).ok()?;
    Some((pretty, !full))
}

/// A writer that refuses bytes past its bound.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_prints_and_stops_at_the_bound() {
        let (text, cut) = pretty(r#"{"a":[1,2],"b":"é"}"#, 1000).unwrap();
        assert_eq!(text, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"é\"\n}");
        assert!(!cut);
        let big = format!("[{}]", vec!["\"word\""; 10_000].join(","));
        let (text, cut) = pretty(&big, 100).unwrap();
        assert!(cut && text.len() <= 400, "{}", text.len());
        assert!(pretty("{\"a\": ", 100).is_none());
    }
}
