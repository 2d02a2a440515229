//! Webhooks: a session (or the schedule that made it) may name a URL; its events are POSTed
//! there, signed per Standard Webhooks ([`sign`]). Delivery is durable: the [`pump`] turns a
//! session's committed events into delivery rows in the same transaction that moves the
//! subscription's cursor (a restart resumes from the cursor: nothing lost, nothing twice),
//! and the [`dispatch`]er sends due deliveries through the egress policy, retrying on a
//! schedule with jitter (`Retry-After` honoured; redirects not followed; 410 disables the
//! endpoint). How an event reads as a webhook is a [`WebhookFormat`]: `native` here,
//! adapters register theirs.

pub(crate) mod dispatch;
pub(crate) mod pump;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::{Event, Session};
use serde_json::{Value, json};

/// How webhooks are delivered.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Where deliveries may go.
    pub egress: agentd_egress::EgressPolicy,
    /// Waits between attempts, after the first (which is immediate); its length is the
    /// number of retries. Each wait varies by ±10 %.
    pub retry_schedule: Vec<Duration>,
    /// One attempt's time limit.
    pub attempt_timeout: Duration,
    /// How events read as webhooks, by format name (`native` is always there).
    pub formats: HashMap<String, Arc<dyn WebhookFormat>>,
}

/// The Standard Webhooks retry schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h — eight attempts over about 28 hours.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            egress: agentd_egress::EgressPolicy::default(),
            retry_schedule: DEFAULT_RETRY_SCHEDULE.to_vec(),
            attempt_timeout: Duration::from_secs(15),
            formats: HashMap::new(),
        }
    }
}

impl WebhookSettings {
    pub(crate) fn format(&self, name: &str) -> Arc<dyn WebhookFormat> {
        self.formats.get(name).cloned().unwrap_or_else(|| Arc::new(NativeFormat))
    }
}

/// How a session's event reads as a webhook message.
pub trait WebhookFormat: Send + Sync + 'static {
    /// The message's type and JSON body for `event` of `session` (None: not sent). `context`
    /// is what the subscription was made with (a tracking id, ...).
    fn render(&self, session: &Session, event: &Event, context: &Value) -> Option<(String, Value)>;

    /// Headers this format sends besides the Standard Webhooks ones (`secret` is the
    /// endpoint's, `body` the exact body).
    fn headers(&self, _event_type: &str, _body: &str, _secret: &str, _timestamp: i64) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// agentd's own: every event, as `{"type": "session.<kind>", "timestamp", "data": <event as
/// the /v1 events API shows it>}`.
pub struct NativeFormat;

impl WebhookFormat for NativeFormat {
    fn render(&self, _session: &Session, event: &Event, _context: &Value) -> Option<(String, Value)> {
        let kind = format!("session.{}", event.kind.as_str());
        let body = json!({
            "type": kind,
            "timestamp": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {
                "session_id": event.session_id.to_string(),
                "seq": event.seq,
                "type": event.kind.as_str(),
                "data": event.data,
                "created_at": event.created_at,
            },
        });
        Some((kind, body))
    }
}

/// The format name of agentd's own messages.
pub const NATIVE: &str = "native";

use agentd_domain::{FieldError, ProjectId, SessionId};
use agentd_store::{DeliveryStatus, WebhookDelivery, WebhookEndpoint};

use crate::engine::{Engine, EngineError, WebhookTarget};

impl Engine {
    /// Starts the pump and the dispatcher.
    pub(crate) fn start_webhooks(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let client = dispatch::Dispatcher::client(&inner.webhooks)
            .map_err(|e| EngineError::Conflict(format!("cannot build the webhook client: {e}")))?;
        let pump = pump::Pump {
            store: inner.store.clone(),
            settings: inner.webhooks.clone(),
            clock: inner.clock.clone(),
            log: inner.log.clone(),
            queued: inner.deliveries_queued.clone(),
        };
        let dispatcher = Arc::new(dispatch::Dispatcher {
            store: inner.store.clone(),
            settings: inner.webhooks.clone(),
            clock: inner.clock.clone(),
            client,
            queued: inner.deliveries_queued.clone(),
            busy: Default::default(),
            lane_done: tokio::sync::Notify::new(),
        });
        inner.tasks.spawn(pump.run(inner.stop_background.clone()));
        inner.tasks.spawn(dispatcher.run(inner.stop_background.clone()));
        Ok(())
    }

    /// The project's endpoint for `url` (checked against the egress policy), made when new.
    pub(crate) async fn webhook_endpoint_for(&self, project: ProjectId, url: &str) -> Result<WebhookTarget, EngineError> {
        self.inner
            .webhooks
            .egress
            .check_url(url)
            .map_err(|refused| FieldError::new("webhook_url", format!("webhook_url is refused: {refused}")))?;
        let secret = sign::new_secret();
        let (endpoint, made) = self.inner.store.ensure_webhook_endpoint(project, url, &secret, self.inner.clock.wall()).await?;
        Ok(WebhookTarget { endpoint_id: endpoint.id, new_secret: made.then_some(endpoint.secret) })
    }

    /// The project's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        project: ProjectId,
        status: Option<DeliveryStatus>,
        session: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, EngineError> {
        Ok(self.inner.store.list_webhook_deliveries(project, status, session, limit).await?)
    }

    /// One delivery.
    pub async fn webhook_delivery(&self, project: ProjectId, id: &str) -> Result<WebhookDelivery, EngineError> {
        self.inner.store.webhook_delivery(project, id).await?.ok_or(EngineError::NotFound)
    }

    /// Sends a delivery again now (same `webhook-id`), with a fresh retry schedule; refused
    /// while its endpoint is disabled.
    pub async fn redeliver(&self, project: ProjectId, id: &str) -> Result<WebhookDelivery, EngineError> {
        let delivery = self.webhook_delivery(project, id).await?;
        if let Some(endpoint) = self.inner.store.webhook_endpoint(&delivery.endpoint_id).await?
            && let Some((_, reason)) = endpoint.disabled
        {
            return Err(EngineError::Conflict(format!(
                "endpoint {} is disabled ({reason}); enable it first (POST /v1/webhooks/endpoints/{}/enable)",
                endpoint.id, endpoint.id
            )));
        }
        let delivery = self
            .inner
            .store
            .requeue_webhook_delivery(project, id, self.inner.clock.wall())
            .await?
            .ok_or(EngineError::NotFound)?;
        self.inner.deliveries_queued.notify_one();
        Ok(delivery)
    }

    /// An endpoint's signing secret, for an API whose create call shows it every time (the
    /// Assisfy auto-trigger's `auto_trigger_web_hook_signature`).
    pub async fn webhook_secret(&self, project: ProjectId, endpoint_id: &str) -> Result<String, EngineError> {
        match self.inner.store.webhook_endpoint(endpoint_id).await? {
            Some(endpoint) if endpoint.project_id == project => Ok(endpoint.secret),
            _ => Err(EngineError::NotFound),
        }
    }

    /// The project's endpoints.
    pub async fn webhook_endpoints(&self, project: ProjectId) -> Result<Vec<WebhookEndpoint>, EngineError> {
        Ok(self.inner.store.list_webhook_endpoints(project).await?)
    }

    /// Lets deliveries go to a disabled endpoint again (new ones; failed ones are redelivered
    /// on request).
    pub async fn enable_webhook_endpoint(&self, project: ProjectId, id: &str) -> Result<WebhookEndpoint, EngineError> {
        if !self.inner.store.set_webhook_endpoint_disabled(project, id, None).await? {
            return Err(EngineError::NotFound);
        }
        self.inner
            .store
            .list_webhook_endpoints(project)
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(EngineError::NotFound)
    }
}
