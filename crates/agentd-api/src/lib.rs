//! agentd's HTTP face.
//!
//! Principal items: [`router`] builds the whole HTTP application over an [`AppState`]
//! (the engine plus [`ApiConfig`]); [`ApiError`] is the one error type of the native API.
//! Only this crate knows HTTP, JSON wire shapes, SSE and WebSocket framing; handlers parse
//! input at the edge and call the engine, which holds all session logic.
#![deny(missing_docs)]

mod agents;
pub mod auth;
mod assisfy;
mod assisters;
mod autessa;
mod contract;
mod conversations;
mod cua;
mod error;
mod events;
mod extract;
mod idempotency;
pub mod links;
mod live_page;
mod metrics;
mod ops;
mod sessions;
mod schedules;
pub mod speech;
mod state;
mod tables;
mod tools;
mod webhooks;
pub mod wire;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorCode};
pub use ops::{MetricsAccess, MetricsToken, VERSION};
pub use metrics::Metrics;
pub use state::{ApiConfig, AppState, SessionLimits};
pub use webhooks::with_formats as with_webhook_formats;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentd",
        description = "Self-hosted autonomous web agents. Authenticate with `Authorization: Bearer <key>` \
                       (or `X-API-Key`). Errors are `{\"error\": {\"type\", \"code\", \"message\", \"field\"}}`. \
                       POSTs accept `Idempotency-Key`. Rate-limit headers: X-RateLimit-Limit-Minute, \
                       X-RateLimit-Remaining-Minute, X-RateLimit-Limit-Day, X-RateLimit-Remaining-Day."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sessions", description = "Create, read, list, change and delete sessions"),
        (name = "control", description = "Stop, pause, resume; answer a person-in-the-loop request"),
        (name = "events", description = "A session's event log: JSON, SSE, WebSocket"),
        (name = "webhooks", description = "Webhook deliveries and endpoints"),
        (name = "schedules", description = "Sessions fired on a timetable"),
        (name = "agents", description = "Named, versioned agent definitions"),
        (name = "tools", description = "User-defined HTTP tools and MCP servers, versioned, executable"),
        (name = "conversations", description = "Multi-turn sessions: messages, closing"),
        (name = "tables", description = "Typed tables: rows, queries, joins, search, CSV import, per-key permissions"),
        (name = "operations", description = "Health and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The whole HTTP application; `/metrics` as `metrics` says.
pub fn router(state: AppState, metrics: MetricsAccess) -> Router {
    let (v1, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(sessions::create_session, sessions::list_sessions))
        .routes(routes!(sessions::get_session, sessions::patch_session, sessions::delete_session))
        .routes(routes!(sessions::cleanup_sessions))
        .routes(routes!(sessions::stop_session))
        .routes(routes!(sessions::pause_session))
        .routes(routes!(sessions::resume_session))
        .routes(routes!(sessions::answer_input))
        .routes(routes!(sessions::resolve_safety_check))
        .routes(routes!(events::session_events))
        .routes(routes!(events::session_ws))
        .routes({
            // A spoken message is larger than other bodies: its route takes the audio limit.
            let (schemas, paths, route) = routes!(conversations::send_message);
            (schemas, paths, route.layer(DefaultBodyLimit::max(speech::body_limit(&state))))
        })
        .routes(routes!(conversations::create_conversation))
        .routes(routes!(conversations::close))
        .routes(routes!(conversations::get_conversation))
        .routes(routes!(agents::create_agent, agents::list_agents))
        .routes(routes!(agents::get_agent, agents::patch_agent, agents::delete_agent))
        .routes(routes!(agents::list_versions))
        .routes(routes!(agents::put_draft))
        .routes(routes!(agents::publish))
        .routes(routes!(tools::create_tool, tools::list_tools))
        .routes(routes!(tools::get_tool, tools::patch_tool, tools::delete_tool))
        .routes(routes!(tools::list_versions))
        .routes(routes!(tools::put_draft))
        .routes(routes!(tools::publish))
        .routes(routes!(tools::mcp_tools))
        .routes(routes!(tools::execute))
        .routes(routes!(tables::create_table, tables::list_tables))
        .routes(routes!(tables::get_table, tables::patch_table, tables::delete_table))
        .routes(routes!(tables::insert_rows, tables::list_rows))
        .routes(routes!(tables::get_row, tables::update_row, tables::delete_row))
        .routes(routes!(tables::batch_update))
        .routes(routes!(tables::batch_delete))
        .routes(routes!(tables::query))
        .routes(routes!(tables::search))
        .routes({
            // A CSV may be larger than other bodies: its route takes the CSV limit.
            let (schemas, paths, route) = routes!(tables::import);
            (schemas, paths, route.layer(DefaultBodyLimit::max(agentd_engine::MAX_CSV_BYTES)))
        })
        .routes(routes!(tables::create_upload_link))
        .routes(routes!(tables::reindex))
        .routes(routes!(tables::list_permissions))
        .routes(routes!(tables::put_permission, tables::delete_permission))
        .routes(routes!(schedules::create_schedule, schedules::list_schedules))
        .routes(routes!(schedules::get_schedule, schedules::delete_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::get_delivery))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::list_endpoints))
        .routes(routes!(webhooks::enable_endpoint))
        .split_for_parts();
    let (_, ops_spec) = OpenApiRouter::<AppState>::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .split_for_parts();
    spec.merge(ops_spec);
    // An upload link is its own key: its route is outside the API-key middleware.
    let (uploads, uploads_spec) = OpenApiRouter::<AppState>::new().routes(routes!(tables::upload)).split_for_parts();
    spec.merge(uploads_spec);
    contract::CommonAnswers.modify(&mut spec);
    spec.info.version = VERSION.to_owned();
    let spec_value = serde_json::to_value(&spec).unwrap_or_default();
    let description = ops::ApiDescription {
        json: Arc::new(spec_value.to_string()),
        html: Arc::new(ops::render_docs(&spec_value)),
    };
    let v1 = v1
        .layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .layer(from_fn_with_state(state.clone(), auth::authenticate));
    let json_doc = description.clone();
    let operations = match metrics {
        MetricsAccess::Keyed(token) => {
            Router::new().route("/metrics", get(ops::metrics).layer(Extension(ops::MetricsGate::Keyed(token))))
        }
        MetricsAccess::SeparateListener => Router::new(),
    };
    Router::new()
        .merge(v1)
        .merge(operations)
        .merge(cua::routes(state.clone()))
        .merge(assisfy::routes(state.clone()))
        .merge(assisters::routes(state.clone()))
        .merge(autessa::routes(state.clone()))
        .merge(live_page::routes())
        .merge(uploads.layer(DefaultBodyLimit::max(agentd_engine::MAX_CSV_BYTES)))
        .route("/healthz", get(ops::healthz))
        .route("/openapi.json", get(move || async move { json_doc.json_response() }))
        .route("/docs", get(move || async move { description.html_response() }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), metrics::track_http))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(cua::cors())
        .with_state(state)
}

/// `/metrics` alone, with no key, for a listener of its own ([`MetricsAccess::SeparateListener`]):
/// whoever can reach that address may read it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics).layer(Extension(ops::MetricsGate::Open)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::new(ErrorCode::NotFound, "no such route; see /docs for the API reference").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, "this method is not served on this route; see /docs").into_response()
}
