//! Why a call to a provider failed, and whether trying again may help.

/// A failed call to an LLM provider. No variant ever holds the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status.
    #[error("the LLM provider answered HTTP {status}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The provider's error message (or the start of its body when it sent no JSON error).
        message: String,
    },
    /// An attempt took longer than the configured timeout.
    #[error("the LLM provider did not answer in time")]
    Timeout,
    /// The connection failed or broke.
    #[error("could not reach the LLM provider: {0}")]
    Transport(String),
    /// The provider reported an error in the middle of a streamed answer.
    #[error("the LLM provider reported {kind}: {message}")]
    Provider {
        /// The provider's error type (`overloaded_error`, `rate_limit_error`...).
        kind: String,
        /// The provider's message.
        message: String,
    },
    /// The answer was not what the protocol promises (not JSON, too large, cut short...).
    #[error("the LLM provider's answer could not be read: {0}")]
    BadResponse(String),
    /// The settings or the request cannot work (no model, a bad URL...).
    #[error("LLM configuration: {0}")]
    Config(String),
}

/// Whether a status means "try again later": the ones every HTTP service shares
/// ([`agentd_egress::RETRYABLE_STATUSES`]: timeout, rate limit, transient server errors), and
/// the providers' own: a conflict (409) and Anthropic's "overloaded" (529).
pub(crate) fn is_retryable_status(status: u16) -> bool {
    agentd_egress::RETRYABLE_STATUSES.contains(&status) || matches!(status, 409 | 529)
}

impl LlmError {
    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => is_retryable_status(*status),
            LlmError::Timeout | LlmError::Transport(_) => true,
            LlmError::Provider { kind, .. } => {
                matches!(kind.as_str(), "overloaded_error" | "rate_limit_error" | "api_error" | "server_error" | "timeout_error")
            }
            LlmError::BadResponse(_) | LlmError::Config(_) => false,
        }
    }

    /// The HTTP status, when the provider answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(LlmError::Http { status, message: String::new() }.is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422, 501] {
            assert!(!LlmError::Http { status, message: String::new() }.is_retryable(), "{status}");
        }
        assert!(LlmError::Timeout.is_retryable());
        assert!(LlmError::Transport("reset".into()).is_retryable());
        assert!(LlmError::Provider { kind: "overloaded_error".into(), message: String::new() }.is_retryable());
        assert!(!LlmError::Provider { kind: "invalid_request_error".into(), message: String::new() }.is_retryable());
        assert!(!LlmError::BadResponse("x".into()).is_retryable());
        assert!(!LlmError::Config("x".into()).is_retryable());
    }
}
