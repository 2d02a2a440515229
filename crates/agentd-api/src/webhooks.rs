//! `/v1/webhooks`: the delivery log (status, attempts, the last answer), redelivery on
//! request, and the project's endpoints (re-enabled after a 410).

use axum::Json;
use axum::extract::{Path, State};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{QueryParams, parse_id};
use crate::sessions::number;
use crate::state::AppState;
use crate::wire::{DeliveriesQuery, DeliveryList, DeliveryView, EndpointList, EndpointView};

/// Webhook deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "webhooks", params(DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let status = q
        .status
        .map(|raw| {
            agentd_store::DeliveryStatus::parse(raw.trim())
                .ok_or_else(|| ApiError::invalid("status", format!("status must be pending, delivered or failed, got `{raw}`")))
        })
        .transpose()?;
    let session = q.session_id.map(|raw| parse_id("session_id", &raw)).transpose()?;
    let limit = number("limit", q.limit, 100, 1, 500)? as u32;
    let deliveries = state.engine.webhook_deliveries(caller.project_id, status, session, limit).await?;
    Ok(Json(DeliveryList { data: deliveries.iter().map(DeliveryView::from).collect() }))
}

/// One delivery.
#[utoipa::path(get, path = "/v1/webhooks/deliveries/{id}", tag = "webhooks", params(("id" = String, Path, pattern = "^msg_[0-9a-f]{32}$", description = "A delivery id: `msg_` and 32 hex digits")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_delivery(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<DeliveryView>> {
    let delivery = state.engine.webhook_delivery(caller.project_id, &id).await.map_err(|e| not_found(e, "delivery"))?;
    Ok(Json((&delivery).into()))
}

/// Send a delivery again now (same `webhook-id`, a fresh retry schedule).
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/redeliver", tag = "webhooks", params(("id" = String, Path, pattern = "^msg_[0-9a-f]{32}$", description = "A delivery id: `msg_` and 32 hex digits")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn redeliver(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<DeliveryView>> {
    let delivery = state.engine.redeliver(caller.project_id, &id).await.map_err(|e| not_found(e, "delivery"))?;
    Ok(Json((&delivery).into()))
}

/// The project's webhook endpoints (secrets are shown only when an endpoint is made).
#[utoipa::path(get, path = "/v1/webhooks/endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointList)), security(("api_key" = [])))]
pub async fn list_endpoints(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EndpointList>> {
    let endpoints = state.engine.webhook_endpoints(caller.project_id).await?;
    Ok(Json(EndpointList { data: endpoints.iter().map(EndpointView::from).collect() }))
}

/// Let deliveries go to an endpoint again after it answered 410 Gone.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/enable", tag = "webhooks", params(("id" = String, Path, pattern = "^ep_[0-9a-f]{32}$", description = "An endpoint id: `ep_` and 32 hex digits")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn enable_endpoint(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EndpointView>> {
    let endpoint = state.engine.enable_webhook_endpoint(caller.project_id, &id).await.map_err(|e| not_found(e, "endpoint"))?;
    Ok(Json((&endpoint).into()))
}

fn not_found(error: agentd_engine::EngineError, what: &str) -> ApiError {
    match error {
        agentd_engine::EngineError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

/// The engine's webhook settings with the formats of the compatible APIs added.
pub fn with_formats(settings: agentd_engine::webhooks::WebhookSettings) -> agentd_engine::webhooks::WebhookSettings {
    let mut settings = settings;
    settings.formats.insert(crate::assisfy::WEBHOOK_FORMAT.into(), std::sync::Arc::new(crate::assisfy::TriggerWebhooks));
    settings
}
