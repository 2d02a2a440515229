//! The Autessa envelope: every answer is a JSON object with an `errors` array — empty beside
//! the endpoint's fields on success ([`ok`]), the only field of an error ([`AutessaError`]).
//! On a WebSocket an error is `{"responseType": "ERROR", "errors": [...]}`.

use agentd_engine::EngineError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};

/// A refused or failed request: its status, its messages and, when rate limited, when to
/// retry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AutessaError {
    pub status: StatusCode,
    pub errors: Vec<String>,
    pub retry_after: Option<u64>,
}

/// What handlers return.
pub(crate) type AutessaResult<T = Response> = Result<T, AutessaError>;

impl AutessaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, errors: vec![message.into()], retry_after: None }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for a `resourceId` the project does not have, or that names another kind.
    pub fn resource_not_found(number: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("Resource with ID {number} not found"))
    }

    /// The WebSocket form: `{"responseType": "ERROR", "errors": [...]}`.
    pub fn frame(&self) -> Value {
        json!({"responseType": "ERROR", "errors": self.errors})
    }
}

/// Native errors keep their status; their message is the one the client reads.
impl From<ApiError> for AutessaError {
    fn from(e: ApiError) -> Self {
        let message = match (e.code, e.retry_after) {
            (ErrorCode::RateLimited, Some(seconds)) => format!("Rate limit exceeded ({}); retry after {seconds} seconds", e.message),
            (ErrorCode::Unauthorized, _) => "Invalid API key".to_owned(),
            _ => e.message,
        };
        Self { status: e.code.status(), errors: vec![message], retry_after: e.retry_after }
    }
}

impl From<EngineError> for AutessaError {
    fn from(e: EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for AutessaError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"errors": self.errors}))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A success: `fields` (an object) with `"errors": []`.
pub(crate) fn ok(mut fields: Value) -> Response {
    if let Some(object) = fields.as_object_mut() {
        object.insert("errors".into(), json!([]));
    }
    Json(fields).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_errors_keep_their_status_in_the_envelope() {
        let mut limited = ApiError::new(ErrorCode::RateLimited, "rate limit exceeded: at most 1 requests per minute");
        limited.retry_after = Some(42);
        let e = AutessaError::from(limited);
        assert_eq!((e.status, e.retry_after), (StatusCode::TOO_MANY_REQUESTS, Some(42)));
        assert!(e.errors[0].ends_with("retry after 42 seconds"), "{:?}", e.errors);
        let e = AutessaError::from(ApiError::new(ErrorCode::Unauthorized, "the API key is invalid or revoked"));
        assert_eq!((e.status, e.errors.clone()), (StatusCode::UNAUTHORIZED, vec!["Invalid API key".to_owned()]));
        assert_eq!(e.frame(), json!({"responseType": "ERROR", "errors": ["Invalid API key"]}));
        let e = AutessaError::from(ApiError::storage_unavailable(agentd_store::StorageFault::Full));
        assert_eq!((e.status, e.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(5)));
    }
}
