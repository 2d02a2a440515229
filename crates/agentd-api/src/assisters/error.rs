//! The Assisters API's errors: `{"error": {"message", "type", "code", "param"}}` with the
//! documented statuses (SPECS §2.1). The SDK reads `error.message` and `error.type` and picks
//! its exception by status (401/403 `AuthError`, 404 `NotFoundError`, 429 `RateLimitError`),
//! so the status is the part clients branch on.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};

/// Native field names → this API's, for errors that come from `parse_create`.
const RENAMES: &[(&str, &str)] = &[("goal", "query"), ("max_cycles", "maxCycles"), ("continues", "sessionId"), ("mode", "mode")];

/// A refused or failed request, or the reason a run has no answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AssistersError {
    pub status: StatusCode,
    /// For the caller: what is wrong, naming the parameter. Never internal detail.
    pub message: String,
    /// The family: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`.
    pub kind: &'static str,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// The request parameter at fault, as the caller spelled it.
    pub param: Option<String>,
    /// Seconds to wait (429, 503).
    pub retry_after: Option<u64>,
}

pub(crate) type AssistersResult<T = Response> = Result<T, AssistersError>;

impl AssistersError {
    pub fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, code, param: None, retry_after: None }
    }

    fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    /// 400 `missing_parameter`: a required parameter is absent or empty.
    pub fn missing(param: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "missing_parameter", format!("{param} is required and must not be empty"))
            .with_param(param)
    }

    /// 400 `invalid_parameter`: a parameter has the wrong type or value.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_parameter", message).with_param(param)
    }

    /// 400 `invalid_request`: the request as a whole is malformed (not JSON, not an object).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message)
    }

    /// 401 for a missing, unknown or revoked key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", "invalid_api_key", message)
    }

    /// 403 for a valid key whose tier may not use the agent endpoints.
    pub fn tier_required() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", "tier_required", "Agent endpoints require the Max tier")
    }

    /// 404 for a `sessionId` the caller's project does not have.
    pub fn session_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", "session_not_found", "No agent session with this sessionId")
            .with_param("sessionId")
    }

    /// 405 on an agent route.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "use POST /v1/agent/run or GET /v1/agent/stream",
        )
    }

    /// 503 while the server stops: the run or stream cannot be followed to its end.
    pub fn shutting_down() -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "service_unavailable", "the server is shutting down; retry shortly");
        e.retry_after = Some(5);
        e
    }

    /// 500 whose detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::internal(detail).into()
    }

    /// The `error` event of a stream: `{"type": "error", "error": {message, type, code},
    /// "message"}`.
    pub fn stream_event(&self) -> Value {
        json!({
            "type": "error",
            "error": {"message": self.message, "type": self.kind, "code": self.code},
            "message": self.message,
        })
    }
}

impl From<ApiError> for AssistersError {
    fn from(e: ApiError) -> Self {
        use ErrorCode::*;
        let (native, renamed) = match e.field.as_deref().and_then(|f| RENAMES.iter().find(|(native, _)| *native == f)) {
            Some((native, ours)) => (Some(*native), Some(*ours)),
            None => (None, e.field.as_deref()),
        };
        // `continues` only fails for an id the project does not have (malformed or unknown).
        if native == Some("continues") {
            return Self::session_not_found();
        }
        // A field the caller cannot set (`model`: no LLM configured), or no agent for the
        // mode: the request is fine, this server cannot serve it.
        if e.code == ModeUnavailable || (e.code.status() == StatusCode::BAD_REQUEST && e.field.is_some() && native.is_none()) {
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "agent_unavailable", e.message);
        }
        let message = match (native, renamed) {
            (Some(native), Some(ours)) => match e.message.strip_prefix(native) {
                Some(rest) => format!("{ours}{rest}"),
                None => format!("{ours}: {}", e.message),
            },
            _ => e.message,
        };
        let (kind, code) = match e.code {
            InvalidRequest | InvalidJson | UnknownField | ModeUnavailable if renamed.is_some() => ("invalid_request_error", "invalid_parameter"),
            InvalidRequest | InvalidJson | UnknownField | ModeUnavailable => ("invalid_request_error", "invalid_request"),
            PayloadTooLarge => ("invalid_request_error", "request_too_large"),
            MethodNotAllowed => ("invalid_request_error", "method_not_allowed"),
            Unauthorized => ("authentication_error", "invalid_api_key"),
            PermissionDenied => ("permission_error", "permission_denied"),
            NotFound => ("not_found_error", "not_found"),
            InvalidState | Conflict | IdempotencyInProgress | IdempotencyKeyReused => ("invalid_request_error", "conflict"),
            RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
            Internal => ("server_error", "internal_error"),
            UpstreamFailed => ("server_error", "upstream_error"),
            Unavailable => ("server_error", "service_unavailable"),
            StorageUnavailable => ("server_error", "storage_unavailable"),
        };
        let message = match (e.code, e.retry_after) {
            // The documented wording.
            (RateLimited, Some(seconds)) => format!("Rate limit exceeded. Please retry after {seconds} seconds."),
            _ => message,
        };
        Self { status: e.code.status(), message, kind, code, param: renamed.map(str::to_owned), retry_after: e.retry_after }
    }
}

impl From<agentd_engine::EngineError> for AssistersError {
    fn from(e: agentd_engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for AssistersError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "code": self.code, "param": self.param}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_errors_name_the_parameter_as_the_caller_spelled_it() {
        let e = AssistersError::from(ApiError::invalid("max_cycles", "max_cycles must be between 1 and 8, got 9"));
        assert_eq!((e.status, e.code, e.param.as_deref()), (StatusCode::BAD_REQUEST, "invalid_parameter", Some("maxCycles")));
        assert_eq!(e.message, "maxCycles must be between 1 and 8, got 9");
        let e = AssistersError::from(ApiError::invalid("goal", "goal must be at most 20000 characters"));
        assert_eq!((e.param.as_deref(), e.message.as_str()), (Some("query"), "query must be at most 20000 characters"));
        let e = AssistersError::from(ApiError::invalid("continues", "continues: no session to continue"));
        assert_eq!((e.status, e.kind, e.param.as_deref()), (StatusCode::NOT_FOUND, "not_found_error", Some("sessionId")));
        let mut limited = ApiError::new(ErrorCode::RateLimited, "rate limit exceeded");
        limited.retry_after = Some(7);
        let e = AssistersError::from(limited);
        assert_eq!((e.status, e.kind, e.code, e.retry_after), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limit_exceeded", Some(7)));
        assert_eq!(e.message, "Rate limit exceeded. Please retry after 7 seconds.");
        let e = AssistersError::from(ApiError::invalid("model", "no LLM provider is configured: set AGENTD_LLM_BASE_URL"));
        assert_eq!((e.status, e.kind, e.code, e.param), (StatusCode::SERVICE_UNAVAILABLE, "server_error", "agent_unavailable", None));
        let e = AssistersError::from(ApiError::new(ErrorCode::ModeUnavailable, "mode `research` is not available").with_field("mode"));
        assert_eq!((e.status, e.code), (StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable"));
        let e = AssistersError::from(ApiError::new(ErrorCode::Internal, "internal server error"));
        assert_eq!((e.status, e.kind), (StatusCode::INTERNAL_SERVER_ERROR, "server_error"));
        let e = AssistersError::from(ApiError::storage_unavailable(agentd_store::StorageFault::Full));
        assert_eq!((e.status, e.kind, e.code, e.retry_after), (StatusCode::SERVICE_UNAVAILABLE, "server_error", "storage_unavailable", Some(5)));
    }
}
