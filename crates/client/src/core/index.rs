//! The timer index of [`Core`]: per-command, per-call and per-subscription deadlines ordered by
//! time, so finding the next deadline and the due ones never scans the registry.
//!
//! The deadline fields themselves (`Pending::deadline`, `Queued::deadline`,
//! `Sub::resubscribe_at`, `Sub::refresh_at`) stay the truth. Each time one is set, an entry
//! `(at, key)` is armed here; clearing a field leaves its entry behind, and an entry whose field
//! no longer holds the same time is stale. Stale entries are dropped when they reach the front
//! ([`Core::prune_timers`], after every input), so the front is always a live deadline and
//! each entry costs O(log n) once.

use std::collections::BTreeSet;

use super::{CallId, Core, Millis, Scope};

/// What an indexed deadline belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// A command in flight (its reply timeout).
    Inflight(u32),
    /// A call waiting for its connection or subscription.
    Queued(Scope, CallId),
    /// A subscription's next subscribe attempt.
    Resubscribe(String),
    /// A subscription's token refresh.
    SubRefresh(String),
}

/// Counters of the work the core did, for tests and diagnostics: they show that the cost of
/// (re)subscribing grows linearly with the number of subscriptions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Commands encoded for the transport.
    pub commands: u64,
    /// WebSocket messages produced (each carries one or more commands).
    pub frames: u64,
    /// Deadlines armed in the timer index.
    pub timers_armed: u64,
    /// Index entries removed (fired or found stale).
    pub timers_removed: u64,
    /// Walks over the whole subscription registry (once per connect, connection loss or close).
    pub registry_walks: u64,
}

/// The ordered set of armed deadlines.
#[derive(Debug, Default)]
pub(super) struct TimerIndex {
    set: BTreeSet<(Millis, TimerKey)>,
}

impl TimerIndex {
    pub(super) fn first(&self) -> Option<Millis> {
        self.set.first().map(|(at, _)| *at)
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

impl Core {
    /// Arms `key` at `at` (the caller has set the matching field to `Some(at)`).
    pub(super) fn arm(&mut self, at: Millis, key: TimerKey) {
        self.stats.timers_armed += 1;
        self.timers.set.insert((at, key));
    }

    /// Whether the field behind `key` still holds `at`.
    fn live(&self, at: Millis, key: &TimerKey) -> bool {
        match key {
            TimerKey::Inflight(id) => self
                .inflight
                .get(id)
                .is_some_and(|p| p.deadline == Some(at)),
            TimerKey::Queued(scope, id) => self
                .queued
                .get(scope)
                .and_then(|q| q.get(id))
                .is_some_and(|q| q.deadline == at),
            TimerKey::Resubscribe(ch) => self
                .subs
                .get(ch)
                .is_some_and(|s| s.resubscribe_at == Some(at)),
            TimerKey::SubRefresh(ch) => self.subs.get(ch).is_some_and(|s| s.refresh_at == Some(at)),
        }
    }

    /// Drops stale entries from the front, so [`TimerIndex::first`] is a live deadline.
    pub(super) fn prune_timers(&mut self) {
        while let Some((at, key)) = self.timers.set.first() {
            if self.live(*at, key) {
                return;
            }
            self.timers.set.pop_first();
            self.stats.timers_removed += 1;
        }
    }

    /// Removes and returns the live entries due at `now`, earliest first.
    pub(super) fn take_due(&mut self, now: Millis) -> Vec<(Millis, TimerKey)> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.timers.set.first() {
            if *at > now {
                break;
            }
            let Some((at, key)) = self.timers.set.pop_first() else {
                break;
            };
            self.stats.timers_removed += 1;
            if self.live(at, &key) {
                due.push((at, key));
            }
        }
        due
    }

    /// Whether the deadline `(at, key)` taken by [`Core::take_due`] is still live (an earlier
    /// one handled in the same round may have cleared it).
    pub(super) fn still_due(&self, at: Millis, key: &TimerKey) -> bool {
        self.live(at, key)
    }
}
