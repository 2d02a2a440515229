//! `Idempotency-Key` on POST: the same key with the same request replays the first response
//! (and makes one resource); the same key with another request is refused with 422.
//! Claims are stored, so a retry after a restart is recognised too.
//!
//! Not for tool executions (`/v1/tools/{id}/execute`): their bodies carry secret values (a
//! stored hash of one could be guessed back) and their answers may be streams.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use agentd_store::{IdempotencyBegin, IdempotencyClaim};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::read_body;
use crate::state::AppState;

/// The request header that carries the key.
pub(crate) const HEADER: &str = "Idempotency-Key";
/// Longest accepted key.
const MAX_KEY_LEN: usize = 255;
/// How long a key is remembered.
pub(crate) const RETENTION_HOURS: i64 = 24;
/// A claim still unfinished after this long belonged to a process that died.
const ABANDONED_AFTER_SECONDS: i64 = 60;

/// Releases a claim if the request never finishes (the client went away and the handler
/// was dropped), so that the client's retry runs instead of hearing "in progress".
struct Claim {
    store: agentd_store::SharedStore,
    project: agentd_domain::ProjectId,
    key: String,
    settled: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, project, key) = (self.store.clone(), self.project, std::mem::take(&mut self.key));
        tokio::spawn(async move {
            if let Err(error) = store.idempotency_release(project, &key).await {
                tracing::error!(%error, "could not release an abandoned idempotency key");
            }
        });
    }
}

/// Whether a request with `method` to `path` (a request's path, or a route's template) takes an
/// `Idempotency-Key`: every POST but a tool execution.
pub(crate) fn applies(method: &str, path: &str) -> bool {
    let tool_execution = path.starts_with("/v1/tools/") && path.ends_with("/execute");
    method == Method::POST.as_str() && !tool_execution
}

/// The key's schema in the API description: 1 to [`MAX_KEY_LEN`] visible ASCII characters,
/// spaces and tabs inside (HTTP trims them around a header's value).
pub(crate) fn key_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .pattern(Some("^[!-~]([\\t -~]*[!-~])?$"))
        .build()
}

/// Middleware (after authentication).
pub async fn idempotent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !applies(req.method().as_str(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    match run(state, key, req, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(state: AppState, key: HeaderValue, req: Request, next: Next) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::invalid(
                HEADER,
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
            .into_response()
        })?
        .to_owned();
    let caller = req.extensions().get::<Caller>().copied().ok_or_else(|| {
        ApiError::new(ErrorCode::Unauthorized, "an API key is required").into_response()
    })?;
    let (parts, body) = req.into_parts();
    let bytes = read_body(Request::from_parts(parts.clone(), body), &state)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or_default());
    hasher.update([0]);
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());
    let now = Utc::now();
    let claim = IdempotencyClaim {
        project_id: caller.project_id,
        key: key.clone(),
        request_hash: request_hash.clone(),
        at: now,
        expire_before: now - Duration::hours(RETENTION_HOURS),
        abandoned_before: now - Duration::seconds(ABANDONED_AFTER_SECONDS),
    };
    let store = state.store();
    match store.idempotency_begin(&claim).await {
        Err(error) => return Err(ApiError::from(error).into_response()),
        Ok(IdempotencyBegin::Seen { request_hash: seen, .. }) if seen != request_hash => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            )
            .with_field(HEADER)
            .into_response());
        }
        Ok(IdempotencyBegin::Seen { response: None, .. }) => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still in progress; retry later",
            )
            .into_response());
        }
        Ok(IdempotencyBegin::Seen { response: Some((status, body)), .. }) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        Ok(IdempotencyBegin::Claimed) => {}
    }
    let mut claim = Claim {
        store: store.clone(),
        project: caller.project_id,
        key: key.clone(),
        settled: false,
    };
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    if status.is_server_error() {
        // Not a final answer: the claim's drop releases it, so a retry runs the request again.
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(e).into_response())?;
    let text = String::from_utf8_lossy(&bytes);
    match store.idempotency_complete(caller.project_id, &key, status.as_u16(), &text).await {
        Ok(()) => claim.settled = true,
        Err(error) => tracing::error!(%error, "could not record an idempotent response"),
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
