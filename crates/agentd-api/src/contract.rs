//! The answers every operation can give besides its own, written into the OpenAPI document in
//! one place ([`CommonAnswers`]) from what the layers in front of the handlers do: the key
//! check and rate limits (401, 429), `Idempotency-Key` on POST (its header, 400, 409, 422),
//! the body limit (413), path and query parsing (400, 404), and a server that is stopping or
//! whose store is unavailable (503). Each operation's own annotations add what only it can
//! answer (403 on a table, 409 on a session in the wrong state, 502 from an MCP server, ...).

use serde_json::Value;
use utoipa::Modify;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required};

use crate::idempotency;

/// One common answer: its status, the name of its reusable response, and what it means.
struct Answer {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    retry_after: bool,
}

const BAD_REQUEST: Answer = Answer {
    status: "400",
    name: "BadRequest",
    description: "The request is malformed: a path id, query parameter, header or body field is invalid \
                  (`error.field` names it), or the body is not JSON of the right shape.",
    retry_after: false,
};
const UNAUTHORIZED: Answer = Answer {
    status: "401",
    name: "Unauthorized",
    description: "No API key, or one that is invalid or revoked: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    retry_after: false,
};
const NOT_FOUND: Answer = Answer {
    status: "404",
    name: "NotFound",
    description: "Nothing by that id in the key's project.",
    retry_after: false,
};
const IN_PROGRESS: Answer = Answer {
    status: "409",
    name: "Conflict",
    description: "The request conflicts with the resource's state, or a request with the same `Idempotency-Key` is \
                  still in progress (retry later).",
    retry_after: false,
};
const TOO_LARGE: Answer = Answer {
    status: "413",
    name: "PayloadTooLarge",
    description: "The body is larger than the server accepts.",
    retry_after: false,
};
const KEY_REUSED: Answer = Answer {
    status: "422",
    name: "IdempotencyKeyReused",
    description: "This `Idempotency-Key` was used before with a different request.",
    retry_after: false,
};
const RATE_LIMITED: Answer = Answer {
    status: "429",
    name: "RateLimited",
    description: "The key's requests per minute or per day are used up; `Retry-After` says when to try again.",
    retry_after: true,
};
const UNAVAILABLE: Answer = Answer {
    status: "503",
    name: "Unavailable",
    description: "The server is shutting down, or its store cannot be reached or written; `Retry-After` says when \
                  to try again.",
    retry_after: true,
};

/// What the statuses an operation declares for itself mean, for those it leaves undescribed
/// (OpenAPI requires every response to be described).
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("101", "The connection switches to WebSocket."),
    ("200", "Done."),
    ("201", "Created."),
    ("204", "Done; no content."),
    ("400", BAD_REQUEST.description),
    ("401", UNAUTHORIZED.description),
    ("403", "The key's grant on this table lacks the permission the request needs."),
    ("404", NOT_FOUND.description),
    ("409", "The request conflicts with the resource's current state."),
    ("413", TOO_LARGE.description),
    ("422", KEY_REUSED.description),
    ("429", RATE_LIMITED.description),
    ("502", "A service the request needed (an MCP server, the speech provider) failed."),
    ("503", UNAVAILABLE.description),
];

/// Adds the common answers to every operation they apply to (see the module docs), the
/// `Idempotency-Key` header to every POST it applies to, and `allowEmptyValue` to every optional
/// query parameter (the server reads `?limit=` as no `limit`: [`crate::extract::QueryParams`]).
/// An operation's own declaration of a status wins; an undescribed one gets its meaning.
pub(crate) struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for answer in [&BAD_REQUEST, &UNAUTHORIZED, &NOT_FOUND, &IN_PROGRESS, &TOO_LARGE, &KEY_REUSED, &RATE_LIMITED, &UNAVAILABLE] {
            components.responses.insert(answer.name.to_owned(), RefOr::T(error_response(answer)));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                annotate(path, method, operation);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|o| (method, o)))
}

fn annotate(path: &str, method: &str, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    // Only the API's own routes sit behind the idempotency layer (not /metrics, not uploads).
    let idempotent = path.starts_with("/v1/") && secured && idempotency::applies(method, path);
    if idempotent {
        add_idempotency_key(operation);
    }
    let parameters: Vec<&Parameter> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    let has_body = operation.request_body.is_some();
    let in_path = parameters.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let parsed = parameters.iter().any(|p| p.parameter_in != ParameterIn::Path || parsed_path_parameter(p));
    let mut common = Vec::new();
    if has_body || parsed || idempotent {
        common.push(&BAD_REQUEST);
    }
    if secured {
        common.push(&UNAUTHORIZED);
    }
    if in_path {
        common.push(&NOT_FOUND);
    }
    if idempotent {
        common.extend([&IN_PROGRESS, &KEY_REUSED]);
    }
    if has_body || idempotent {
        common.push(&TOO_LARGE);
    }
    if secured {
        common.extend([&RATE_LIMITED, &UNAVAILABLE]);
    }
    let responses = &mut operation.responses.responses;
    for answer in common {
        responses
            .entry(answer.status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(answer.name)));
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
            && let Some((_, description)) = DESCRIPTIONS.iter().find(|(s, _)| s == status)
        {
            response.description = (*description).to_owned();
        }
    }
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Query
            && parameter.required == Required::False
        {
            // utoipa has no field for it: the keyword goes in beside the parameter's own.
            parameter.extensions.get_or_insert_with(Default::default).insert("allowEmptyValue".into(), Value::Bool(true));
        }
    }
}

/// A path parameter the server parses (a UUID, an integer), so a malformed one is a 400
/// rather than a 404.
fn parsed_path_parameter(parameter: &Parameter) -> bool {
    let schema = serde_json::to_value(&parameter.schema).unwrap_or_default();
    schema["format"] == "uuid" || schema["type"] == "integer"
}

fn add_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let named = |p: &RefOr<Parameter>| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case(idempotency::HEADER));
    if parameters.iter().any(named) {
        return;
    }
    let mut parameter = Parameter::new(idempotency::HEADER);
    parameter.parameter_in = ParameterIn::Header;
    parameter.required = Required::False;
    parameter.description = Some(format!(
        "Retry-safe POST: the same key with the same request replays the first answer for {} hours; \
         with another request it is refused (422).",
        idempotency::RETENTION_HOURS
    ));
    parameter.schema = Some(idempotency::key_schema().into());
    parameters.push(RefOr::T(parameter));
}

fn error_response(answer: &Answer) -> Response {
    let mut response = ResponseBuilder::new()
        .description(answer.description)
        .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))));
    if answer.retry_after {
        let mut header = Header::new(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build());
        header.description = Some("Seconds to wait before retrying.".into());
        response = response.header("Retry-After", header);
    }
    response.build()
}

/// An array of strings for `schema_with`: at most `max` items (none when `None`), each `item`;
/// `null` too when `nullable` (an optional field left null reads as absent).
pub(crate) fn strings(max: Option<usize>, item: ObjectBuilder, nullable: bool) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, Schema, SchemaType};
    let types = if nullable { SchemaType::from_iter([Type::Array, Type::Null]) } else { SchemaType::new(Type::Array) };
    Schema::Array(ArrayBuilder::new().schema_type(types).items(item.schema_type(Type::String).build()).max_items(max).build())
}
