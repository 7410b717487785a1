//! The commands in flight, from their submit to the push of their outcome, and what the window
//! measured: the three latencies and the throughput. The HTTP side says when a command was sent
//! and what id it got; the WebSocket side says when its outcome arrived. Either may come first
//! (a fast command's push can beat its own `202`), so an outcome with no submit yet is kept until
//! the submit is recorded.

use chrono::{DateTime, Utc};
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime},
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::report::Latency;

/// A monotonic instant on the wall clock, to compare with the timestamps PostgreSQL wrote (same
/// machine, same clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The wall-clock time of `instant`.
    pub(crate) fn wall(&self, instant: Instant) -> DateTime<Utc> {
        let wall = match instant.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall - self.instant.duration_since(instant),
        };
        DateTime::<Utc>::from(wall)
    }
}

/// How a command ended, as pushed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// When the push arrived.
    pub(crate) received: Instant,
    /// `finished_at` of the pushed view: when the outcome was written.
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// `success` (anything else is a failure: `fail`, `cancelled`).
    pub(crate) success: bool,
}

#[derive(Debug)]
struct Pending {
    sent: Instant,
    /// Its latencies count (sent inside the measured window).
    measured: bool,
    done: Option<oneshot::Sender<()>>,
}

/// What the measured window saw.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Submit → `202`.
    pub(crate) accepted: Latency,
    /// Submit → `finished_at` (the outcome written to PostgreSQL).
    pub(crate) committed: Latency,
    /// Submit → the outcome's push received.
    pub(crate) pushed: Latency,
    /// Successes pushed inside the window, whenever they were submitted.
    pub(crate) successes_in_window: u64,
    /// Outcomes other than success pushed inside the window.
    pub(crate) failures_in_window: u64,
    /// Submits that got no `202`, by status (`0`: no answer at all).
    pub(crate) refused: HashMap<u16, u64>,
    /// Open-loop submits skipped because too many were in flight.
    pub(crate) skipped: u64,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<Uuid, Pending>,
    /// Outcomes whose submit is not recorded yet.
    early: HashMap<Uuid, Outcome>,
    window: Option<(Instant, Instant)>,
    measured: Measured,
}

/// Shared between the submitters and the subscriber.
#[derive(Debug)]
pub(crate) struct Tracker {
    clock: Clock,
    state: Mutex<State>,
}

impl Tracker {
    pub(crate) fn new() -> Self {
        Self {
            clock: Clock::new(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing here panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Latencies of commands sent from `start` on count, and outcomes pushed between `start` and
    /// `end` make the throughput; everything recorded before is forgotten.
    pub(crate) fn measure(&self, start: Instant, end: Instant) {
        let mut state = self.state();
        state.window = Some((start, end));
        state.measured = Measured::default();
    }

    fn in_window(state: &State, at: Instant) -> bool {
        state
            .window
            .is_some_and(|(start, end)| at >= start && at < end)
    }

    /// Whether a submit sent at `sent` is measured.
    fn measured(state: &State, sent: Instant) -> bool {
        state
            .window
            .is_some_and(|(start, end)| sent >= start && sent < end)
    }

    /// A command was accepted (`202` at `accepted`); `done` fires when its outcome is pushed.
    pub(crate) fn submitted(
        &self,
        id: Uuid,
        sent: Instant,
        accepted: Instant,
        done: Option<oneshot::Sender<()>>,
    ) {
        let mut state = self.state();
        let measured = Self::measured(&state, sent);
        if measured {
            state
                .measured
                .accepted
                .record(accepted.duration_since(sent));
        }
        let pending = Pending {
            sent,
            measured,
            done,
        };
        match state.early.remove(&id) {
            Some(outcome) => self.complete(&mut state, pending, outcome),
            None => {
                state.pending.insert(id, pending);
            }
        }
    }

    /// A submit got no `202`.
    pub(crate) fn refused(&self, sent: Instant, status: u16) {
        let mut state = self.state();
        if Self::measured(&state, sent) {
            *state.measured.refused.entry(status).or_default() += 1;
        }
    }

    /// An open-loop submit was skipped.
    pub(crate) fn skipped(&self, at: Instant) {
        let mut state = self.state();
        if Self::measured(&state, at) {
            state.measured.skipped += 1;
        }
    }

    /// The outcome of a command was pushed.
    pub(crate) fn pushed(&self, id: Uuid, outcome: Outcome) {
        let mut state = self.state();
        match state.pending.remove(&id) {
            Some(pending) => self.complete(&mut state, pending, outcome),
            None => {
                state.early.insert(id, outcome);
            }
        }
    }

    fn complete(&self, state: &mut State, pending: Pending, outcome: Outcome) {
        if Self::in_window(state, outcome.received) {
            if outcome.success {
                state.measured.successes_in_window += 1;
            } else {
                state.measured.failures_in_window += 1;
            }
        }
        if pending.measured {
            let pushed = outcome.received.saturating_duration_since(pending.sent);
            state.measured.pushed.record(pushed);
            if let Some(finished_at) = outcome.finished_at {
                let sent = self.clock.wall(pending.sent);
                let committed = (finished_at - sent).to_std().unwrap_or(Duration::ZERO);
                state.measured.committed.record(committed);
            }
        }
        if let Some(done) = pending.done {
            let _ = done.send(());
        }
    }

    /// Commands submitted whose outcome has not been pushed.
    pub(crate) fn in_flight(&self) -> usize {
        self.state().pending.len()
    }

    /// Measured commands still waiting for their outcome.
    pub(crate) fn measured_in_flight(&self) -> usize {
        self.state()
            .pending
            .values()
            .filter(|pending| pending.measured)
            .count()
    }

    /// Takes what the window measured, and forgets everything still in flight.
    pub(crate) fn take(&self) -> Measured {
        let mut state = self.state();
        state.pending.clear();
        state.early.clear();
        state.window = None;
        std::mem::take(&mut state.measured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(received: Instant) -> Outcome {
        Outcome {
            received,
            finished_at: None,
            success: true,
        }
    }

    #[test]
    fn an_outcome_pushed_before_its_submit_is_recorded_still() {
        let tracker = Tracker::new();
        let start = Instant::now();
        tracker.measure(start, start + Duration::from_secs(10));
        let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
        let sent = start + Duration::from_millis(1);
        tracker.pushed(early, outcome(sent + Duration::from_millis(4)));
        tracker.submitted(early, sent, sent + Duration::from_millis(5), None);
        tracker.submitted(late, sent, sent + Duration::from_millis(2), None);
        assert_eq!(tracker.in_flight(), 1);
        tracker.pushed(late, outcome(sent + Duration::from_millis(8)));
        assert_eq!(tracker.in_flight(), 0);
        let measured = tracker.take();
        assert_eq!(measured.successes_in_window, 2);
        assert_eq!(measured.accepted.count(), 2);
        assert_eq!(measured.pushed.count(), 2);
    }

    #[test]
    fn only_the_window_is_measured() {
        let tracker = Tracker::new();
        let start = Instant::now() + Duration::from_secs(1);
        tracker.measure(start, start + Duration::from_secs(1));
        let before = Uuid::now_v7();
        let sent = start - Duration::from_millis(500);
        tracker.submitted(before, sent, sent, None);
        // Submitted in warm-up, pushed inside the window: throughput, not latency.
        tracker.pushed(before, outcome(start + Duration::from_millis(1)));
        let after = Uuid::now_v7();
        let sent = start + Duration::from_millis(900);
        tracker.submitted(after, sent, sent, None);
        // Pushed after the window: latency, not throughput.
        tracker.pushed(after, outcome(start + Duration::from_secs(2)));
        let measured = tracker.take();
        assert_eq!(measured.successes_in_window, 1);
        assert_eq!(measured.pushed.count(), 1);
    }

    #[test]
    fn the_wall_clock_follows_the_monotonic_one() {
        let clock = Clock::new();
        let later = clock.instant + Duration::from_millis(1500);
        let difference = clock.wall(later) - clock.wall(clock.instant);
        assert_eq!(difference.num_milliseconds(), 1500);
    }
}
