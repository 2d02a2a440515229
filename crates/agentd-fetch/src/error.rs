//! [`FetchError`]: why a fetch gave no page.

use std::time::Duration;

use agentd_egress::EgressError;

/// Why a fetch gave no page. Each message is one sentence for the agent (and the person reading
/// its events); none carries the whole URL, only its host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The text is not an http(s) URL with a host.
    #[error("not a valid URL: {0}")]
    InvalidUrl(String),
    /// The egress policy refused the URL or a redirect hop (the policy's message as is: it names
    /// the host or address and why).
    #[error("refused by the egress policy: {0}")]
    Refused(EgressError),
    /// The host name could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Dns {
        /// The host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// No connection could be made (refused, reset, unreachable, TLS failure).
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// The host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The fetch took longer than the time limit.
    #[error("{host} did not answer within the {}-second limit", limit.as_secs_f64())]
    Timeout {
        /// The host being read when time ran out.
        host: String,
        /// The limit ([`crate::FetchLimits::total_time`]).
        limit: Duration,
    },
    /// The server answered with an HTTP status of 400 or more.
    #[error("{host} answered HTTP {status}{}", reason_suffix(*status))]
    Status {
        /// The host.
        host: String,
        /// The status code.
        status: u16,
    },
    /// The redirect chain was longer than the limit.
    #[error("more than {limit} redirects (the last from {host})")]
    TooManyRedirects {
        /// The host of the last redirect followed.
        host: String,
        /// How many redirects are followed ([`agentd_egress::MAX_REDIRECTS`]).
        limit: usize,
    },
    /// A redirect without a usable `Location`.
    #[error("{host} answered a redirect without a valid Location ({reason})")]
    BadRedirect {
        /// The host.
        host: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The content type is not one that can be turned into text.
    #[error("the content type {content_type} is not supported ({SUPPORTED} are)")]
    UnsupportedType {
        /// The media type, as the server sent it (or as sniffed).
        content_type: String,
    },
    /// A PDF, and this build reads no PDF text.
    #[error("PDF text extraction is not supported")]
    PdfUnsupported,
    /// The body could not be turned into text: undecodable bytes, a damaged or encrypted PDF, a
    /// PDF cut at the size limit.
    #[error("cannot read the {content_type} body: {reason}")]
    Decode {
        /// The media type being read.
        content_type: String,
        /// Why.
        reason: String,
    },
    /// The transfer failed some other way (the connection broke while reading the body, a
    /// malformed response).
    #[error("fetching from {host} failed: {reason}")]
    Transfer {
        /// The host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// The HTTP status behind a [`FetchError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later might succeed (time-outs, connection failures, 429 and 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout { .. } | FetchError::Connect { .. } | FetchError::Transfer { .. } => true,
            FetchError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The fetch error for an egress error met on the way to `host`.
    pub(crate) fn from_egress(error: EgressError, host: &str) -> FetchError {
        match error {
            EgressError::InvalidUrl(reason) => FetchError::InvalidUrl(reason),
            EgressError::Resolve { host, reason } => FetchError::Dns { host, reason },
            EgressError::TooManyRedirects(limit) => FetchError::TooManyRedirects { host: host.to_owned(), limit },
            EgressError::Client(reason) => FetchError::Client(reason),
            refusal => FetchError::Refused(refusal),
        }
    }
}

/// The kinds of content read, for the unsupported-type message.
const SUPPORTED: &str =
    if cfg!(feature = "pdf") { "HTML, plain text, JSON and PDF" } else { "HTML, plain text and JSON" };

fn reason_suffix(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default()
}
