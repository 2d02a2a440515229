//! Debug output: the lines a tool's execution reports as they happen ("GET https://… → 200 OK in
//! 123 ms", an MCP server's stderr), for a streaming execute endpoint. Every line is masked
//! before it leaves.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::mask::Masker;

/// The longest debug line, in characters; the rest is cut (with "…").
pub const MAX_DEBUG_LINE: usize = 2000;

/// Where debug lines go: nowhere, a bounded channel, or a callback.
///
/// A channel that is full drops the line rather than wait: a slow watcher never holds up a tool.
#[derive(Clone, Default)]
pub struct DebugSink {
    target: Target,
}

#[derive(Clone, Default)]
enum Target {
    #[default]
    Nowhere,
    Channel(mpsc::Sender<String>),
    Callback(Arc<dyn Fn(String) + Send + Sync>),
}

impl DebugSink {
    /// Lines are dropped.
    pub fn none() -> DebugSink {
        DebugSink::default()
    }

    /// A sink and the receiver of its lines; at most `capacity` lines wait in between.
    pub fn channel(capacity: usize) -> (DebugSink, mpsc::Receiver<String>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (DebugSink::from_sender(sender), receiver)
    }

    /// Lines go to `sender` (dropped while it is full or closed).
    pub fn from_sender(sender: mpsc::Sender<String>) -> DebugSink {
        DebugSink { target: Target::Channel(sender) }
    }

    /// Lines go to `callback`, called on the executing task (keep it quick).
    pub fn from_fn(callback: impl Fn(String) + Send + Sync + 'static) -> DebugSink {
        DebugSink { target: Target::Callback(Arc::new(callback)) }
    }

    fn send(&self, line: String) {
        match &self.target {
            Target::Nowhere => {}
            Target::Channel(sender) => {
                let _ = sender.try_send(line);
            }
            Target::Callback(callback) => callback(line),
        }
    }
}

impl fmt::Debug for DebugSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.target {
            Target::Nowhere => "nowhere",
            Target::Channel(_) => "channel",
            Target::Callback(_) => "callback",
        };
        f.debug_struct("DebugSink").field("target", &target).finish()
    }
}

/// A sink with the execution's masker: the only way lines are reported.
#[derive(Clone)]
pub(crate) struct Reporter {
    sink: DebugSink,
    masker: Arc<Masker>,
}

impl Reporter {
    pub(crate) fn new(sink: DebugSink, masker: Arc<Masker>) -> Reporter {
        Reporter { sink, masker }
    }

    /// Reports one line, masked and cut to [`MAX_DEBUG_LINE`] characters.
    pub(crate) fn line(&self, text: impl AsRef<str>) {
        if matches!(self.sink.target, Target::Nowhere) {
            return;
        }
        let masked = self.masker.mask(text.as_ref());
        let line = match masked.char_indices().nth(MAX_DEBUG_LINE) {
            Some((cut, _)) => format!("{}…", &masked[..cut]),
            None => masked,
        };
        self.sink.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_masked_cut_and_dropped_when_the_channel_is_full() {
        let (sink, mut lines) = DebugSink::channel(2);
        let masker = Masker::new(&[("key".to_owned(), "hunter2".to_owned())].into());
        let reporter = Reporter::new(sink, Arc::new(masker));
        reporter.line("token hunter2");
        reporter.line("x".repeat(MAX_DEBUG_LINE + 5));
        reporter.line("dropped: the channel holds two");
        assert_eq!(lines.recv().await.unwrap(), "token [redacted:key]");
        assert_eq!(lines.recv().await.unwrap().chars().count(), MAX_DEBUG_LINE + 1);
        assert!(lines.try_recv().is_err());
    }
}
