//! The Computer Use Agent API's envelope `{success, message, data}` for every answer, and its
//! errors `{success: false, message, data: {error}}` (with `detail`, FastAPI's field, too).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};

/// A successful answer.
pub(crate) fn ok(message: impl Into<String>, data: Value) -> Response {
    Json(json!({"success": true, "message": message.into(), "data": data})).into_response()
}

/// A refused or failed request, in the envelope.
#[derive(Debug)]
pub(crate) struct CuaError {
    pub status: StatusCode,
    /// The short message (`Session not found`).
    pub message: String,
    /// The longer explanation in `data.error`.
    pub error: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

pub(crate) type CuaResult<T = Response> = Result<T, CuaError>;

impl CuaError {
    pub fn new(status: StatusCode, message: impl Into<String>, error: impl Into<String>) -> Self {
        Self { status, message: message.into(), error: error.into(), field: None, retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(StatusCode::BAD_REQUEST, message.clone(), message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::bad_request(message) }
    }

    /// The documented 404 for a session id nobody knows.
    pub fn session_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Session not found", format!("Session with ID {id} does not exist"))
    }

    pub fn invalid_task_id() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Invalid task ID", "the task_id does not belong to this session")
    }

    /// Renames the native API's field names to this API's (`goal` → `task`, ...).
    pub fn renaming(mut self, renames: &[(&str, &str)]) -> Self {
        for (native, ours) in renames {
            if self.field.as_deref() == Some(native) {
                self.field = Some((*ours).to_owned());
                for text in [&mut self.message, &mut self.error] {
                    if let Some(rest) = text.strip_prefix(native) {
                        *text = format!("{ours}{rest}");
                    }
                }
            }
        }
        self
    }
}

impl From<ApiError> for CuaError {
    fn from(e: ApiError) -> Self {
        // This API knows 400, 401, 403, 404, 429 and 500: a state conflict is a bad request.
        let status = match e.code {
            ErrorCode::InvalidState | ErrorCode::Conflict | ErrorCode::IdempotencyInProgress | ErrorCode::IdempotencyKeyReused => {
                StatusCode::BAD_REQUEST
            }
            code => code.status(),
        };
        // The message names the field it is about, whatever the native wording.
        let message = match &e.field {
            Some(field) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
            _ => e.message,
        };
        Self { status, message: message.clone(), error: message, field: e.field, retry_after: e.retry_after }
    }
}

impl From<agentd_engine::EngineError> for CuaError {
    fn from(e: agentd_engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for CuaError {
    fn into_response(self) -> Response {
        let mut data = json!({"error": self.error});
        if let Some(field) = &self.field {
            data["field"] = json!(field);
        }
        let body = json!({"success": false, "message": self.message, "data": data, "detail": self.message});
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
    fn a_disk_that_refuses_writes_is_a_503_with_retry_after() {
        let e = CuaError::from(ApiError::storage_unavailable(agentd_store::StorageFault::Full));
        assert_eq!((e.status, e.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(5)));
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "5");
    }
}
