//! The session status machine.
//!
//! ```text
//! queued ─► running ⇄ paused
//!              │  ▲       ▲
//!              ▼  │       │
//!            waiting ─────┘      (for a person's input, permission or a safety check)
//! any live state ─► completed | failed | stopped | timed_out   (terminal)
//! ```
//! Every change of status goes through [`SessionStatus::apply`], so an illegal move (resume a
//! completed session) is refused in one place, with a message a user can act on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Accepted, waiting for a runner slot.
    Queued,
    /// An agent is working on it.
    Running,
    /// Held by a user; the agent takes no step until resumed.
    Paused,
    /// Blocked on a person: input, a permission or a safety-check confirmation.
    Waiting,
    /// The agent finished its task.
    Completed,
    /// The agent, the runtime or the server failed; `error` says why.
    Failed,
    /// A user stopped it.
    Stopped,
    /// It ran past its overall or inactivity timeout.
    TimedOut,
}

/// A requested change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The runner picked the session up.
    Start,
    /// A user paused it.
    Pause,
    /// A user resumed it; `to_waiting` when a person-in-the-loop request is still open.
    Resume {
        /// Return to `waiting` rather than `running`.
        to_waiting: bool,
    },
    /// The agent asked a person for something.
    AwaitPerson,
    /// A person answered the open request.
    Answer,
    /// The agent finished.
    Complete,
    /// Something failed.
    Fail,
    /// A user stopped it.
    Stop,
    /// A timeout fired.
    TimeOut,
}

impl Transition {
    /// The verb a user would use, for error messages.
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Resume { .. } => "resume",
            Transition::AwaitPerson => "wait on",
            Transition::Answer => "answer",
            Transition::Complete => "complete",
            Transition::Fail => "fail",
            Transition::Stop => "stop",
            Transition::TimeOut => "time out",
        }
    }
}

/// A transition that the status machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a session that is {}", .transition.verb(), .from)]
pub struct IllegalTransition {
    /// The status the session was in.
    pub from: SessionStatus,
    /// What was asked.
    pub transition: Transition,
}

impl SessionStatus {
    /// Every status, in life order.
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Queued,
        SessionStatus::Running,
        SessionStatus::Paused,
        SessionStatus::Waiting,
        SessionStatus::Completed,
        SessionStatus::Failed,
        SessionStatus::Stopped,
        SessionStatus::TimedOut,
    ];

    /// The wire name (`timed_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Queued => "queued",
            SessionStatus::Running => "running",
            SessionStatus::Paused => "paused",
            SessionStatus::Waiting => "waiting",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "failed",
            SessionStatus::Stopped => "stopped",
            SessionStatus::TimedOut => "timed_out",
        }
    }

    /// True once nothing more can happen to the session.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionStatus::Completed
                | SessionStatus::Failed
                | SessionStatus::Stopped
                | SessionStatus::TimedOut
        )
    }

    /// The status after `transition`, or why it is not allowed.
    pub fn apply(self, transition: Transition) -> Result<SessionStatus, IllegalTransition> {
        use SessionStatus::*;
        let next = match (self, transition) {
            (Queued, Transition::Start) => Some(Running),
            (Running | Waiting, Transition::Pause) => Some(Paused),
            (Paused, Transition::Resume { to_waiting }) => {
                Some(if to_waiting { Waiting } else { Running })
            }
            (Running, Transition::AwaitPerson) => Some(Waiting),
            // Paused mid-step: the request is recorded and the session waits once resumed.
            (Paused, Transition::AwaitPerson) => Some(Paused),
            (Waiting, Transition::Answer) => Some(Running),
            (Paused, Transition::Answer) => Some(Paused),
            (Running | Waiting | Paused, Transition::Complete) => Some(Completed),
            (s, Transition::Fail) if !s.is_terminal() => Some(Failed),
            (s, Transition::Stop) if !s.is_terminal() => Some(Stopped),
            (Running | Waiting, Transition::TimeOut) => Some(TimedOut),
            _ => None,
        };
        next.ok_or(IllegalTransition {
            from: self,
            transition,
        })
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = SessionStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`; expected one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::SessionStatus::*;
    use super::*;

    const TRANSITIONS: [Transition; 10] = [
        Transition::Start,
        Transition::Pause,
        Transition::Resume { to_waiting: false },
        Transition::Resume { to_waiting: true },
        Transition::AwaitPerson,
        Transition::Answer,
        Transition::Complete,
        Transition::Fail,
        Transition::Stop,
        Transition::TimeOut,
    ];

    /// The whole table, written out by hand: (from, transition) → to, or None when illegal.
    fn expected(from: SessionStatus, t: Transition) -> Option<SessionStatus> {
        let table: &[(SessionStatus, Transition, SessionStatus)] = &[
            (Queued, Transition::Start, Running),
            (Queued, Transition::Fail, Failed),
            (Queued, Transition::Stop, Stopped),
            (Running, Transition::Pause, Paused),
            (Running, Transition::AwaitPerson, Waiting),
            (Running, Transition::Complete, Completed),
            (Running, Transition::Fail, Failed),
            (Running, Transition::Stop, Stopped),
            (Running, Transition::TimeOut, TimedOut),
            (Paused, Transition::Resume { to_waiting: false }, Running),
            (Paused, Transition::Resume { to_waiting: true }, Waiting),
            (Paused, Transition::Answer, Paused),
            (Paused, Transition::AwaitPerson, Paused),
            (Paused, Transition::Complete, Completed),
            (Paused, Transition::Fail, Failed),
            (Paused, Transition::Stop, Stopped),
            (Waiting, Transition::Pause, Paused),
            (Waiting, Transition::Answer, Running),
            (Waiting, Transition::Complete, Completed),
            (Waiting, Transition::Fail, Failed),
            (Waiting, Transition::Stop, Stopped),
            (Waiting, Transition::TimeOut, TimedOut),
        ];
        table
            .iter()
            .find(|(f, tr, _)| *f == from && *tr == t)
            .map(|(_, _, to)| *to)
    }

    #[test]
    fn every_pair_follows_the_table() {
        for from in SessionStatus::ALL {
            for t in TRANSITIONS {
                assert_eq!(from.apply(t).ok(), expected(from, t), "{from:?} + {t:?}");
            }
        }
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for from in SessionStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for t in TRANSITIONS {
                assert!(from.apply(t).is_err());
            }
        }
    }

    #[test]
    fn message_names_verb_and_state() {
        let err = Completed
            .apply(Transition::Resume { to_waiting: false })
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot resume a session that is completed");
    }

    #[test]
    fn parses_wire_names() {
        for s in SessionStatus::ALL {
            assert_eq!(s.as_str().parse::<SessionStatus>().unwrap(), s);
        }
        assert!("done".parse::<SessionStatus>().unwrap_err().contains("timed_out"));
    }
}
