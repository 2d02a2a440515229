//! Loop detection: the same action on the same page, again and again. The first repeats earn
//! the model a nudge; more end the session.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// How many recent (page, action) pairs are remembered.
const WINDOW: usize = 12;

/// What to do about the action just recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing repeats.
    Fine,
    /// It repeats: tell the model (the text goes into its next prompt).
    Nudge(String),
    /// It keeps repeating after the nudge: end the session.
    Stop(String),
}

/// Remembers recent (page, action) pairs.
pub struct LoopGuard {
    recent: VecDeque<u64>,
    nudge_at: usize,
    stop_at: usize,
}

impl LoopGuard {
    /// A guard that nudges at `nudge_at` identical pairs within the window and stops at
    /// `stop_at`.
    pub fn new(nudge_at: usize, stop_at: usize) -> Self {
        Self { recent: VecDeque::with_capacity(WINDOW), nudge_at, stop_at: stop_at.max(nudge_at + 1) }
    }

    /// Records `action` (its name and arguments) taken on `page` (its rendered state).
    pub fn record(&mut self, page: &str, action: &str) -> Verdict {
        let mut hasher = DefaultHasher::new();
        (page, action).hash(&mut hasher);
        let key = hasher.finish();
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        let times = self.recent.iter().filter(|k| **k == key).count();
        if times >= self.stop_at {
            Verdict::Stop(format!("the agent repeated the same action on the same page {times} times ({action})"))
        } else if times >= self.nudge_at {
            Verdict::Nudge(format!(
                "You have done `{action}` on this same page {times} times and nothing changed. Do something else, or call done if the goal cannot be reached."
            ))
        } else {
            Verdict::Fine
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_nudged_then_stopped() {
        let mut guard = LoopGuard::new(3, 5);
        assert_eq!(guard.record("p", "click 1"), Verdict::Fine);
        assert_eq!(guard.record("p", "click 1"), Verdict::Fine);
        assert!(matches!(guard.record("p", "click 1"), Verdict::Nudge(_)));
        // The same action on another page is not a repeat.
        assert_eq!(guard.record("q", "click 1"), Verdict::Fine);
        assert!(matches!(guard.record("p", "click 1"), Verdict::Nudge(_)));
        assert!(matches!(guard.record("p", "click 1"), Verdict::Stop(_)));
    }
}
