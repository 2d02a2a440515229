//! Deliveries → HTTP. Due deliveries are sent through the egress policy, in order per
//! endpoint and concurrently across endpoints; each attempt is recorded, and a failed one is
//! retried on the schedule (`Retry-After` may push it later) until it runs out. The schedule is
//! this module's; reading `Retry-After`, the jitter and describing a failure are
//! agentd-egress's, like every outbound connection's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentd_egress::{ClientConfig, EgressClient, ErrorChain, Jitter};
use agentd_store::{AttemptOutcome, DeliveryStatus, SharedStore, WebhookDelivery, WebhookEndpoint};

use super::{WebhookSettings, sign};
use crate::clock::{Clock, sleep_until_wall};

/// Deliveries taken per pass.
const BATCH: u32 = 64;
/// The longest a `Retry-After` may push an attempt back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The spread of each wait of the schedule (5 s is 4.5 to 5.5 s).
const SCHEDULE_JITTER: Jitter = Jitter::Around(0.10);
/// Bytes of a failed answer's body kept in the delivery log.
const ERROR_BODY_BYTES: usize = 200;

pub(crate) struct Dispatcher {
    pub store: SharedStore,
    pub settings: Arc<WebhookSettings>,
    pub clock: Arc<dyn Clock>,
    pub client: EgressClient,
    pub queued: Arc<tokio::sync::Notify>,
    /// Endpoints with a lane running.
    pub busy: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Told when a lane ends.
    pub lane_done: tokio::sync::Notify,
}

impl Dispatcher {
    pub(crate) fn client(settings: &WebhookSettings) -> Result<EgressClient, agentd_egress::EgressError> {
        settings.egress.client(ClientConfig {
            timeout: settings.attempt_timeout,
            follow_redirects: false,
            user_agent: format!("agentd-webhooks/{}", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
    }

    pub(crate) async fn run(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut backoff = crate::clock::Backoff::default();
        loop {
            let now = self.clock.wall();
            let next = match self.pass().await {
                Ok(()) => {
                    backoff.reset();
                    // A busy lane's deliveries are its own business: it is waited for apart.
                    let busy: Vec<String> = self.busy.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
                    self.store.next_webhook_due(&busy).await.unwrap_or(Some(now + backoff.next()))
                }
                Err(error) => {
                    tracing::warn!(%error, "webhook dispatch failed; retrying");
                    Some(now + backoff.next())
                }
            };
            let at = next.map_or(now + crate::clock::RECHECK, |next| next.min(now + crate::clock::RECHECK));
            tokio::select! {
                () = sleep_until_wall(self.clock.as_ref(), at) => {}
                () = self.queued.notified() => {}
                () = self.lane_done.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Starts a lane for each endpoint with deliveries due and no lane running. Lanes run on
    /// their own, so a slow endpoint holds up only itself; within a lane, deliveries go in
    /// order, and the lane ends at the first failure (the rest wait for that one's retry).
    async fn pass(self: &Arc<Self>) -> Result<(), agentd_store::StoreError> {
        let busy: Vec<String> = self.busy.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        let due = self.store.due_webhook_deliveries(self.clock.wall(), &busy, BATCH).await?;
        let mut lanes: HashMap<String, Vec<WebhookDelivery>> = HashMap::new();
        for delivery in due {
            lanes.entry(delivery.endpoint_id.clone()).or_default().push(delivery);
        }
        for (endpoint_id, deliveries) in lanes {
            self.busy.lock().unwrap_or_else(|e| e.into_inner()).insert(endpoint_id.clone());
            let this = self.clone();
            // Not tracked for shutdown: a delivery cut off mid-flight stays pending and is sent
            // again after the restart (receivers deduplicate on webhook-id).
            tokio::spawn(async move {
                if let Err(error) = this.lane(&endpoint_id, deliveries).await {
                    tracing::warn!(%error, endpoint = %endpoint_id, "a webhook lane failed; its deliveries stay pending");
                }
                this.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&endpoint_id);
                this.lane_done.notify_one();
            });
        }
        Ok(())
    }

    async fn lane(&self, endpoint_id: &str, deliveries: Vec<WebhookDelivery>) -> Result<(), agentd_store::StoreError> {
        let endpoint = self.store.webhook_endpoint(endpoint_id).await?;
        for delivery in deliveries {
            let outcome = self.attempt(endpoint.as_ref(), &delivery).await;
            self.store.record_webhook_attempt(&delivery.id, &outcome).await?;
            if outcome.response_status == Some(410)
                && let Some(endpoint) = &endpoint
            {
                let reason = "the endpoint answered 410 Gone".to_owned();
                self.store.set_webhook_endpoint_disabled(endpoint.project_id, &endpoint.id, Some((outcome.at, reason))).await?;
                tracing::warn!(endpoint = %endpoint.id, "webhook endpoint disabled: it answered 410 Gone");
                break;
            }
            if outcome.status == DeliveryStatus::Pending {
                break;
            }
        }
        Ok(())
    }

    /// One attempt at `delivery`, and what comes next.
    async fn attempt(&self, endpoint: Option<&WebhookEndpoint>, delivery: &WebhookDelivery) -> AttemptOutcome {
        let at = self.clock.wall();
        let failed = |error: String| AttemptOutcome { at, response_status: None, status: DeliveryStatus::Failed, next_attempt_at: None, error: Some(error) };
        let Some(endpoint) = endpoint else { return failed("the endpoint no longer exists".into()) };
        if let Some((_, reason)) = &endpoint.disabled {
            return failed(format!("not sent: the endpoint is disabled ({reason})"));
        }
        let timestamp = at.timestamp();
        let request = match self.client.request(reqwest::Method::POST, &endpoint.url) {
            Ok(request) => request,
            Err(refused) => return failed(format!("refused by the egress policy: {refused}")),
        };
        let format = self.settings.format(&delivery.format);
        let mut request = request;
        for (name, value) in format.headers(&delivery.event_type, &delivery.payload, &endpoint.secret, timestamp) {
            request = request.header(name, value);
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign::signature(&endpoint.secret, &delivery.id, timestamp, &delivery.payload))
            .body(delivery.payload.clone())
            .send()
            .await;
        let (status, error, retry_after) = match response {
            Ok(response) if response.status().is_success() => {
                return AttemptOutcome { at, response_status: Some(response.status().as_u16()), status: DeliveryStatus::Delivered, next_attempt_at: None, error: None };
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = agentd_egress::retry_after(response.headers(), at.into(), MAX_RETRY_AFTER);
                let error = if response.status().is_redirection() {
                    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
                    format!("HTTP {status}: redirects are not followed (to {})", redirect_origin(&endpoint.url, location))
                } else {
                    let body = response.text().await.unwrap_or_default();
                    let body: String = body.chars().take(ERROR_BODY_BYTES).collect();
                    if body.trim().is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {}", body.trim()) }
                };
                (Some(status), error, retry_after)
            }
            Err(error) => {
                if let Some(refused) = agentd_egress::EgressError::find_in(&error) {
                    // The name resolved to a refused address: no retry can change that.
                    return failed(format!("refused by the egress policy: {refused}"));
                }
                (None, ErrorChain(&error).to_string(), None)
            }
        };
        if status == Some(410) {
            return AttemptOutcome { at, response_status: status, status: DeliveryStatus::Failed, next_attempt_at: None, error: Some(error) };
        }
        let round = delivery.round_attempts as usize;
        let next = self.settings.retry_schedule.get(round).map(|wait| {
            let wait = SCHEDULE_JITTER.spread(*wait).max(retry_after.unwrap_or_default());
            at + chrono::Duration::from_std(wait).unwrap_or_default()
        });
        AttemptOutcome {
            at,
            response_status: status,
            status: if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
            next_attempt_at: next,
            error: Some(error),
        }
    }
}

/// Where a redirect pointed, as scheme, host and port only: its path or query may carry a token
/// (an http → https redirect repeats the endpoint's own).
fn redirect_origin(endpoint: &str, location: Option<&str>) -> String {
    let to = location.and_then(|location| reqwest::Url::parse(endpoint).ok()?.join(location.trim()).ok());
    match to {
        Some(url) if url.has_host() => url.origin().ascii_serialization(),
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_is_named_by_its_origin_only() {
        let endpoint = "http://hooks.example/in/t0ken?sig=1";
        let cases = [
            (Some("https://hooks.example/in/t0ken?sig=1"), "https://hooks.example"),
            (Some("/elsewhere?sig=2"), "http://hooks.example"),
            (Some("http://user:pw@other.example:8080/x"), "http://other.example:8080"),
            (Some("data:text/plain,hi"), "?"),
            (None, "?"),
        ];
        for (location, shown) in cases {
            assert_eq!(redirect_origin(endpoint, location), shown, "{location:?}");
        }
    }
}
