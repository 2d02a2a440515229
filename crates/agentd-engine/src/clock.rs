//! Time, injected: the engine's timeouts read [`Clock::now`] and wait with
//! [`Clock::sleep_until`], so tests drive them with a [`ManualClock`] in milliseconds instead
//! of waiting for real minutes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::watch;

/// The longest a background task sleeps before looking at the store again.
pub(crate) const RECHECK: chrono::Duration = chrono::Duration::seconds(30);

/// Waits after failures: 1 s, doubling, at most 30 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    /// The next wait.
    pub(crate) fn next(&mut self) -> chrono::Duration {
        let wait = chrono::Duration::seconds(1 << self.0.min(5)).min(RECHECK);
        self.0 += 1;
        wait
    }

    /// After a success.
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Sleeps until the wall-clock time `at` on `clock`.
pub(crate) fn sleep_until_wall(clock: &dyn Clock, at: chrono::DateTime<chrono::Utc>) -> BoxFuture<'static, ()> {
    let ahead = (at - clock.wall()).to_std().unwrap_or_default();
    clock.sleep_until(clock.now() + ahead)
}

/// A source of monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
    /// Now on the calendar (schedules and webhook retries are set in wall time).
    fn wall(&self) -> chrono::DateTime<chrono::Utc>;
    /// Resolves at or after `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> chrono::DateTime<chrono::Utc> {
        agentd_domain::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// Time that moves only when told to ([`ManualClock::advance`]).
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    wall_base: chrono::DateTime<chrono::Utc>,
    offset: Mutex<Duration>,
    moved: watch::Sender<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            wall_base: agentd_domain::now(),
            offset: Mutex::new(Duration::ZERO),
            moved: watch::channel(Duration::ZERO).0,
        }
    }
}

impl ManualClock {
    /// A clock standing still at the moment of creation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward, waking every sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
        self.moved.send_replace(*offset);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wall(&self) -> chrono::DateTime<chrono::Utc> {
        let offset = *self.offset.lock().unwrap_or_else(|e| e.into_inner());
        self.wall_base + chrono::Duration::from_std(offset).unwrap_or_default()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let mut moved = self.moved.subscribe();
        let base = self.base;
        Box::pin(async move {
            loop {
                if base + *moved.borrow_and_update() >= deadline {
                    return;
                }
                if moved.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_only_when_time_reaches_them() {
        let clock = std::sync::Arc::new(ManualClock::new());
        let deadline = clock.now() + Duration::from_secs(60);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
    }
}
