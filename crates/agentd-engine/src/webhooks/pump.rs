//! Events → deliveries. After commits, the pump reads each open subscription's new events,
//! renders them in its format and queues them as deliveries, moving the cursor in the same
//! transaction; a subscription closes after its session's terminal event.

use std::sync::Arc;
use std::time::Duration;

use agentd_store::{DeliveryStatus, SharedStore, WebhookDelivery, WebhookSubscription};

use super::WebhookSettings;
use crate::clock::Clock;
use crate::event_log::EventLog;

/// Events read per pass and subscription.
const BATCH: u32 = 500;
/// Commits in a burst are taken together: one pass per this much time at most.
const COALESCE: Duration = Duration::from_millis(10);

pub(crate) struct Pump {
    pub store: SharedStore,
    pub settings: Arc<WebhookSettings>,
    pub clock: Arc<dyn Clock>,
    pub log: EventLog,
    /// Told when deliveries were queued.
    pub queued: Arc<tokio::sync::Notify>,
}

impl Pump {
    pub(crate) async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut backoff = crate::clock::Backoff::default();
        loop {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "could not queue webhook deliveries; retrying");
                let wait = backoff.next().to_std().unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = stop.cancelled() => return,
                }
            }
            backoff.reset();
            tokio::select! {
                () = self.log.next_commit() => tokio::time::sleep(COALESCE).await,
                () = stop.cancelled() => {
                    // A last pass, so what was committed before the stop is queued.
                    let _ = self.pass().await;
                    return;
                }
            }
        }
    }

    /// Queues every open subscription's new events.
    pub(crate) async fn pass(&self) -> Result<(), agentd_store::StoreError> {
        let mut queued = false;
        for (subscription, last_seq) in self.store.lagging_webhook_subscriptions().await? {
            let mut cursor = subscription.cursor_seq;
            while cursor < last_seq {
                let advanced = self.queue(&subscription, cursor).await?;
                if advanced == cursor {
                    break;
                }
                cursor = advanced;
                queued = true;
            }
        }
        if queued {
            self.queued.notify_one();
        }
        Ok(())
    }

    /// Queues the events after `cursor`; returns the new cursor.
    async fn queue(&self, subscription: &WebhookSubscription, cursor: u64) -> Result<u64, agentd_store::StoreError> {
        let events = self.store.events_after(subscription.session_id, cursor, BATCH).await?;
        let Some(last) = events.last() else { return Ok(cursor) };
        let new_cursor = last.seq;
        let finished = events.iter().any(|e| e.kind.is_terminal());
        let Some(endpoint) = self.store.webhook_endpoint(&subscription.endpoint_id).await? else {
            // The endpoint is gone: nothing to deliver, ever.
            self.store.queue_webhook_deliveries(subscription.session_id, new_cursor, true, &[]).await?;
            return Ok(new_cursor);
        };
        let Some(session) = self.store.get_session(endpoint.project_id, subscription.session_id).await? else {
            self.store.queue_webhook_deliveries(subscription.session_id, new_cursor, true, &[]).await?;
            return Ok(new_cursor);
        };
        let format = self.settings.format(&subscription.format);
        let now = self.clock.wall();
        let deliveries: Vec<WebhookDelivery> = events
            .iter()
            .filter_map(|event| format.render(&session, event, &subscription.context))
            .map(|(event_type, body)| WebhookDelivery {
                id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
                project_id: endpoint.project_id,
                endpoint_id: endpoint.id.clone(),
                session_id: Some(session.id),
                event_type,
                format: subscription.format.clone(),
                payload: body.to_string(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                round_attempts: 0,
                next_attempt_at: Some(now),
                last_attempt_at: None,
                response_status: None,
                last_error: None,
                created_at: now,
                delivered_at: None,
            })
            .collect();
        self.store.queue_webhook_deliveries(subscription.session_id, new_cursor, finished, &deliveries).await?;
        Ok(new_cursor)
    }
}
