//! The native API's one error type: every failure maps to an [`ErrorCode`], each code to
//! one HTTP status and the body `{"error": {"type", "code", "message", "field"}}`.

use agentd_domain::FieldError;
use agentd_engine::{AppendError, EngineError};
use agentd_store::{StorageFault, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// `Retry-After` of a 503 `storage_unavailable`: a full disk is usually freed by an
/// operator or a cleanup job, not within a second.
pub const STORAGE_RETRY_AFTER_SECONDS: u64 = 5;

/// Every error the native API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field or parameter is invalid (400).
    InvalidRequest,
    /// The body is not JSON, or not JSON of the right shape (400).
    InvalidJson,
    /// The body names a field the endpoint does not know (400).
    UnknownField,
    /// No agent implements the requested mode yet (400).
    ModeUnavailable,
    /// Missing, malformed or revoked API key (401).
    Unauthorized,
    /// The key may not do this (a table grant without the permission) (403).
    PermissionDenied,
    /// No such resource in the caller's project, or no such route (404).
    NotFound,
    /// The HTTP method is not served on this route (405).
    MethodNotAllowed,
    /// The session's status does not allow the command (409).
    InvalidState,
    /// The request conflicts with the resource's state (409).
    Conflict,
    /// A request with the same Idempotency-Key is still being processed (409).
    IdempotencyInProgress,
    /// The body is larger than the configured limit (413).
    PayloadTooLarge,
    /// The Idempotency-Key was used before with a different request (422).
    IdempotencyKeyReused,
    /// Too many requests for the key's limits (429).
    RateLimited,
    /// Something failed inside the server; details are in its log (500).
    Internal,
    /// The server is shutting down or its store is unreachable (503).
    Unavailable,
    /// The server's disk does not take writes right now (full, read-only, failing): nothing
    /// was stored; retry after `Retry-After` seconds (503).
    StorageUnavailable,
    /// A service agentd called for the request failed (an MCP server, a speech provider) (502).
    UpstreamFailed,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidJson | UnknownField | ModeUnavailable => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            PermissionDenied => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            InvalidState | Conflict | IdempotencyInProgress => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable | StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The error family, as in the body's `type`.
    pub fn kind(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidJson | UnknownField | ModeUnavailable | PayloadTooLarge
            | MethodNotAllowed => "invalid_request_error",
            Unauthorized => "authentication_error",
            PermissionDenied => "permission_error",
            NotFound => "not_found_error",
            InvalidState | Conflict | IdempotencyInProgress | IdempotencyKeyReused => "conflict_error",
            RateLimited => "rate_limit_error",
            Internal | Unavailable | StorageUnavailable | UpstreamFailed => "api_error",
        }
    }
}

/// An error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// What kind of error.
    pub code: ErrorCode,
    /// For the user: what is wrong and how to fix it. Never internal detail.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 and 503).
    pub retry_after: Option<u64>,
    /// Itemised problems (a CSV import's lines at fault), shown as `errors`.
    pub errors: Option<serde_json::Value>,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Error family: invalid_request_error, authentication_error, not_found_error,
    /// permission_error, conflict_error, rate_limit_error, api_error.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, or null.
    pub field: Option<String>,
    /// Itemised problems, when there are several (a CSV import: `[{line, column, message}]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            errors: None,
        }
    }

    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).with_field(field)
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A 404 for a resource of this kind.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// A 503 `storage_unavailable`: the disk refused a write, so nothing was stored; the
    /// cause goes to the log (and `/healthz`), the client learns to retry.
    pub fn storage_unavailable(fault: StorageFault) -> Self {
        tracing::warn!(cause = %fault, "a request failed: the disk does not take writes");
        let mut e = Self::new(
            ErrorCode::StorageUnavailable,
            "the server cannot store data right now, so nothing was saved; retry shortly",
        );
        e.retry_after = Some(STORAGE_RETRY_AFTER_SECONDS);
        e
    }

    /// A 500 whose detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal server error; the server log has the details")
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.code.kind(),
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
                errors: self.errors.clone(),
            },
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.fault() {
            Some(fault) => ApiError::storage_unavailable(fault),
            None => ApiError::internal(e),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => ApiError::not_found("session"),
            EngineError::Illegal(illegal) => ApiError::new(ErrorCode::InvalidState, illegal.to_string()),
            EngineError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            EngineError::Invalid(field) => field.into(),
            EngineError::ModeUnavailable(mode) => ApiError::new(
                ErrorCode::ModeUnavailable,
                format!(
                    "mode `{mode}` is not available on this server yet: no agent implementation is registered for it"
                ),
            )
            .with_field("mode"),
            EngineError::ShuttingDown => {
                let mut e = ApiError::new(ErrorCode::Unavailable, "the server is shutting down; retry shortly");
                e.retry_after = Some(5);
                e
            }
            EngineError::Forbidden(message) => ApiError::new(ErrorCode::PermissionDenied, message),
            EngineError::Store(error) | EngineError::Log(AppendError::Store(error)) => error.into(),
            EngineError::Log(error) => ApiError::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_that_refuses_writes_is_a_503_storage_unavailable_to_retry() {
        let cases = [
            EngineError::Store(StoreError::Unavailable(StorageFault::Full)),
            EngineError::Log(AppendError::Store(StoreError::Unavailable(StorageFault::Io))),
        ];
        for engine in cases {
            let e = ApiError::from(engine);
            assert_eq!((e.code, e.code.status(), e.code.kind()), (ErrorCode::StorageUnavailable, StatusCode::SERVICE_UNAVAILABLE, "api_error"));
            assert_eq!(e.retry_after, Some(STORAGE_RETRY_AFTER_SECONDS));
            let response = e.into_response();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        }
        let other = ApiError::from(EngineError::Store(StoreError::Corrupt("x".into())));
        assert_eq!((other.code, other.retry_after), (ErrorCode::Internal, None));
        assert_eq!(serde_json::to_value(ErrorCode::StorageUnavailable).unwrap(), "storage_unavailable");
    }
}
