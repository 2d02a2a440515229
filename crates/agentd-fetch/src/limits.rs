//! [`FetchLimits`]: how much a fetch may read, how long it may take, how much text it returns.

use std::time::Duration;

/// The limits of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// The most body bytes read (default 5 MiB). Reading stops there and the page is marked
    /// truncated; no more is ever buffered.
    pub max_body_bytes: usize,
    /// The limit on the whole fetch, from the first connection through every redirect to the
    /// extracted text (default 20 s). Past it the fetch fails with [`crate::FetchError::Timeout`].
    pub total_time: Duration,
    /// The most characters of text returned (default 100,000, about 25k tokens); longer text is
    /// cut at a line break where one is near, and the page marked truncated.
    pub max_output_chars: usize,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits { max_body_bytes: 5 * 1024 * 1024, total_time: Duration::from_secs(20), max_output_chars: 100_000 }
    }
}
