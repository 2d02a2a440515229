//! Request extractors that turn bad input into errors naming the field: JSON bodies
//! ([`JsonBody`]), query strings ([`QueryParams`]) and ids in paths ([`parse_id`]).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body parsed into `T`, or a 400/413 that says what is wrong and where.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = read_body(req, state).await?;
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::InvalidJson,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(ErrorCode::InvalidJson, "the body must be a JSON object"));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads the whole body, answering 413 past the configured limit.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than the server accepts")
        } else {
            ApiError::new(ErrorCode::InvalidJson, format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parses JSON into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {inner}"));
        }
        field_error(&path, &inner.to_string())
    })?;
    de.end()
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Turns a serde message at `path` into an error naming the field.
fn field_error(path: &str, message: &str) -> ApiError {
    let path = if path == "." { "" } else { path };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    // serde: "unknown field `foo`, expected one of `a`, `b`"
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        // serde_path_to_error's path already ends at the unknown field.
        let field = if path == name || path.ends_with(&format!(".{name}")) { path.to_owned() } else { join(name) };
        return ApiError::new(ErrorCode::UnknownField, format!("unknown field `{field}`"))
            .with_field(field);
    }
    // serde: "missing field `goal`"
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let field = join(name);
        return ApiError::invalid(field.clone(), format!("{field} is required"));
    }
    let message = message.split(" at line ").next().unwrap_or(message);
    if path.is_empty() {
        ApiError::new(ErrorCode::InvalidJson, format!("the body has the wrong shape: {message}"))
    } else {
        ApiError::invalid(path, format!("{path}: {message}"))
    }
}

/// A query string parsed into `T` (unknown parameters refused), naming the parameter at fault.
/// A parameter with an empty value (`?limit=`) reads as absent, as most clients mean it (forms
/// and query builders send empty fields) and as the API description says (`allowEmptyValue`).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let given = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(_, value)| !value.is_empty()))
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(given.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let mut error = field_error(&path, &message);
                if error.code == ErrorCode::UnknownField {
                    error.code = ErrorCode::InvalidRequest;
                    error.message = error.message.replace("unknown field", "unknown query parameter");
                }
                error
            })
    }
}

/// Parses an id from a path segment, naming the parameter when it is malformed.
pub fn parse_id<T: FromStr<Err = agentd_domain::IdError>>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|e: agentd_domain::IdError| ApiError::invalid(field, e.to_string()))
}
