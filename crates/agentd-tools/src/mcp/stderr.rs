//! A stdio MCP server's stderr, read line by line into debug output.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;

use crate::debug::Reporter;

/// The most of one stderr line kept in memory, in bytes (the rest of the line is skipped).
const MAX_LINE_BYTES: usize = 8 * 1024;

/// Reports each line of `stderr` as `stderr: …` until the pipe closes (the server and whatever
/// it started have exited).
pub(crate) async fn forward(stderr: ChildStderr, reporter: Reporter) {
    let mut reader = BufReader::new(stderr);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (used, ends_line) = match chunk.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (chunk.len(), false),
        };
        let content = if ends_line { &chunk[..used - 1] } else { &chunk[..used] };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        reader.consume(used);
        if ends_line {
            report(&reporter, &line);
            line.clear();
        }
    }
    if !line.is_empty() {
        report(&reporter, &line);
    }
}

fn report(reporter: &Reporter, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if !text.is_empty() {
        reporter.line(format!("stderr: {text}"));
    }
}
