//! The Assisfy API's errors: `{"error": "<message>"}` with the status (the SDK throws
//! `body.error` as its Error's message). Messages name the request field at fault.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Refusal;
use crate::error::{ApiError, ErrorCode};

/// The 401 message, for a missing key as for a wrong one (SPECS §1.2).
const INVALID_KEY: &str = "Invalid API key";

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AssisfyError {
    pub status: StatusCode,
    /// For the caller: what is wrong, naming the field. Never internal detail.
    pub error: String,
    /// Seconds to wait (429, 503).
    pub retry_after: Option<u64>,
    /// Headers to add (where a key's rate limits stand); boxed, as it is rare.
    pub headers: Option<Box<HeaderMap>>,
}

pub(crate) type AssisfyResult<T = Response> = Result<T, AssisfyError>;

impl AssisfyError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self { status, error: error.into(), retry_after: None, headers: None }
    }

    /// A caller `auth::admit` refused, with the rate-limit headers it gives.
    pub fn refused(refusal: Refusal) -> Self {
        let mut carrier = Response::default();
        refusal.write_headers(&mut carrier);
        let headers = Some(Box::new(std::mem::take(carrier.headers_mut()))).filter(|h| !h.is_empty());
        Self { headers, ..Self::from(refusal.error) }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn session_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Session not found")
    }

    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }
}

impl From<ApiError> for AssisfyError {
    fn from(e: ApiError) -> Self {
        let error = match (e.code, &e.field) {
            (ErrorCode::Unauthorized, _) => INVALID_KEY.to_owned(),
            (ErrorCode::NotFound, _) => "Session not found".to_owned(),
            // The message names the field it is about, whatever the native wording.
            (_, Some(field)) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
            _ => e.message,
        };
        Self { status: e.code.status(), error, retry_after: e.retry_after, headers: None }
    }
}

impl From<agentd_engine::EngineError> for AssisfyError {
    fn from(e: agentd_engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for AssisfyError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.error}))).into_response();
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
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
    fn a_disk_that_refuses_writes_is_a_503_with_retry_after() {
        let e = AssisfyError::from(ApiError::storage_unavailable(agentd_store::StorageFault::Full));
        assert_eq!((e.status, e.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(5)));
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "5");
    }
}
