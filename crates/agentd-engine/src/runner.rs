//! The runner: a priority queue of sessions, a bounded number of slots, and per session a
//! task that runs the agent under the overall and inactivity timeouts.

use std::sync::{Arc, Mutex};

use agentd_domain::{EventKind, NewEvent, SessionStatus, Transition};
use agentd_store::{SessionChange, StoreError, WriteHealth};
use serde_json::json;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::agent::{AgentError, SessionContext};
use crate::engine::{Engine, failed_event};
use crate::event_log::{AppendError, committed};
use crate::live::LiveSession;

/// How often a session the disk would not let start looks whether writes work again.
const STORE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Sessions waiting for a slot. Highest priority first, then first come first served; the
/// priority is read at dequeue time, so a PATCH to a queued session takes effect.
#[derive(Default)]
pub(crate) struct RunQueue {
    items: Mutex<Vec<(u64, Arc<LiveSession>)>>,
    counter: std::sync::atomic::AtomicU64,
    notify: Notify,
}

impl RunQueue {
    pub fn push(&self, live: Arc<LiveSession>) {
        let order = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.items.lock().unwrap_or_else(|e| e.into_inner()).push((order, live));
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Arc<LiveSession>> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let best = items
            .iter()
            .enumerate()
            .max_by_key(|(_, (order, live))| (live.priority_rank(), std::cmp::Reverse(*order)))
            .map(|(i, _)| i)?;
        Some(items.swap_remove(best).1)
    }

    async fn next(&self) -> Arc<LiveSession> {
        loop {
            let notified = self.notify.notified();
            if let Some(live) = self.pop() {
                return live;
            }
            notified.await;
        }
    }
}

impl Engine {
    /// Takes queued sessions as slots free up, until shutdown.
    pub(crate) async fn dispatch(self) {
        let shutdown = self.inner.stop_dispatch.clone();
        loop {
            let permit = tokio::select! {
                permit = self.inner.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = shutdown.cancelled() => return,
            };
            let live = tokio::select! {
                live = self.inner.queue.next() => live,
                _ = shutdown.cancelled() => return,
            };
            if live.status() != SessionStatus::Queued {
                // Stopped while queued: already settled.
                self.forget(live.id);
                continue;
            }
            let engine = self.clone();
            self.inner.tasks.spawn(async move { engine.run_session(live, permit).await });
        }
    }

    async fn run_session(self, live: Arc<LiveSession>, _slot: OwnedSemaphorePermit) {
        let id = live.id;
        let started = live.transition(
            Transition::Start,
            NewEvent::new(EventKind::Started, json!({"mode": live.spec.mode, "goal": live.spec.goal})),
            |_, change| change.started_at = Some(agentd_domain::now()),
        );
        let started = match started {
            Ok(changed) => Some(committed(changed.pending).await),
            Err(_) => None,
        };
        match started {
            Some(Ok(_)) => self.drive(&live).await,
            Some(Err(AppendError::Store(StoreError::Unavailable(fault)))) if live.back_to_queued() => {
                // The disk refused the start, so the store still has the session queued, and
                // no work began: it waits (holding its slot, as nothing else could start
                // either) until writes work again, then queues up again.
                tracing::warn!(session_id = %id, cause = %fault, "a session could not start: the disk refused its start; it is queued again once writes work");
                self.requeue_when_writable(live).await;
                return;
            }
            Some(Err(_)) | None => {}
        }
        if !live.status().is_terminal() {
            // Whatever the agent did, a session never outlives its runner in a live status.
            self.finish_failed(&live, "the agent stopped without finishing", "agent_ended").await;
        }
        self.forget(id);
    }

    /// Queues `live` again once the store takes writes (checked every second), unless the
    /// node stops first (it stays queued, for the next start).
    async fn requeue_when_writable(&self, live: Arc<LiveSession>) {
        let stop = self.inner.stop_dispatch.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(STORE_RECHECK) => {}
                _ = stop.cancelled() => return,
            }
            if self.inner.store.write_health().await == WriteHealth::Writable {
                break;
            }
        }
        if live.status() == SessionStatus::Queued {
            self.inner.queue.push(live);
        } else {
            // Stopped while it waited: already settled.
            self.forget(live.id);
        }
    }

    async fn drive(&self, live: &Arc<LiveSession>) {
        let Some(agent) = self.inner.registry.get(live.spec.mode) else {
            self.finish_failed(live, "no agent implements this mode", "mode_unavailable").await;
            return;
        };
        let ctx = SessionContext { live: live.clone(), tools: self.inner.tools.clone(), user_tools: Default::default() };
        let mut task = tokio::spawn(async move { agent.run(ctx).await });
        let outcome = tokio::select! {
            joined = &mut task => Some(joined),
            _ = enforce_timeouts(live) => {
                live.screen.keep(live.id).await;
                task.abort();
                None
            }
            _ = live.cancel.cancelled() => {
                live.screen.keep(live.id).await;
                task.abort();
                None
            }
        };
        match outcome {
            Some(Ok(Ok(completion))) => {
                let usage = live.lock().usage.clone();
                let data = json!({
                    "response": completion.response,
                    "response_type": completion.response_type,
                    "usage": usage,
                });
                settle(live, Transition::Complete, NewEvent::new(EventKind::Completed, data), |change| {
                    change.response = Some(completion.response.clone());
                    change.response_type = Some(completion.response_type);
                })
                .await;
            }
            Some(Ok(Err(AgentError::Failed { message, reason }))) => {
                self.finish_failed(live, &message, &reason).await;
            }
            Some(Ok(Err(AgentError::Stopped { reason }))) => {
                let event = NewEvent::new(EventKind::Stopped, json!({"reason": reason}));
                settle(live, Transition::Stop, event, |change| change.error = Some(reason.clone())).await;
            }
            Some(Ok(Err(AgentError::Ended))) | None => {}
            Some(Err(joined)) => {
                tracing::error!(session_id = %live.id, error = %joined, "agent task died");
                self.finish_failed(live, "the agent crashed", "agent_crashed").await;
            }
        }
    }

    async fn finish_failed(&self, live: &LiveSession, message: &str, reason: &str) {
        settle(live, Transition::Fail, failed_event(message, reason), |change| change.error = Some(message.to_owned())).await;
    }
}

/// Ends the session with `transition` and `event` (unless something ended it first) and waits
/// for the event to be committed.
async fn settle(live: &LiveSession, transition: Transition, event: NewEvent, prepare: impl FnOnce(&mut SessionChange)) {
    if let Ok(changed) = live.transition(transition, event, |_, change| prepare(change)) {
        let _ = committed(changed.pending).await;
    }
}

/// Times the session out once it has been active (running or waiting, not paused) longer
/// than its overall timeout, or idle longer than its inactivity timeout, and resolves when
/// that is recorded. Paused time counts for neither. The deadlines are computed from state
/// that every transition updates under the session's lock, so they do not depend on when
/// this task gets to run.
async fn enforce_timeouts(live: &LiveSession) {
    let clock = live.clock.clone();
    let mut status = live.watch_status();
    loop {
        // Mark the status seen *before* reading the state: a change after this line wakes us.
        status.borrow_and_update();
        let (current, due) = {
            let state = live.lock();
            (state.status, state.timeout_due(&live.spec))
        };
        if current.is_terminal() {
            return std::future::pending().await;
        }
        let Some(due) = due else {
            if status.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        };
        tokio::select! {
            _ = clock.sleep_until(due.at) => {
                // Activity may have moved the deadline while we slept: look again.
                let now = clock.now();
                let Some(due) = live.lock().timeout_due(&live.spec).filter(|d| d.at <= now) else {
                    continue;
                };
                let message = format!("the session exceeded its {} limit of {} s", due.reason, due.seconds);
                let event = NewEvent::new(EventKind::TimedOut, json!({"reason": due.reason, "seconds": due.seconds}));
                // Refused only when the status moved meanwhile (paused, ended): look again.
                if let Ok(changed) = live.transition(Transition::TimeOut, event, |_, change| change.error = Some(message)) {
                    let _ = committed(changed.pending).await;
                    return;
                }
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}
