//! A state read by the handles and kept by the task, which a handle's call changes at once.
//!
//! A handle that sends a state-changing command (`connect`, `subscribe`, ...) first sets the
//! state the call leads to and counts the command as issued. The task, after applying
//! commands and events, writes the core's own state, but only once it has applied every
//! issued command, so it never overwrites a call's state with an older one.

use std::sync::{Arc, Mutex, PoisonError};

struct Inner<T> {
    value: T,
    issued: u64,
}

/// Shared state cell; clones refer to the same state.
pub(crate) struct StateCell<T>(Arc<Mutex<Inner<T>>>);

impl<T> Clone for StateCell<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Copy + PartialEq> StateCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Arc::new(Mutex::new(Inner { value, issued: 0 })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state.
    pub(crate) fn get(&self) -> T {
        self.lock().value
    }

    /// Handle: a state-changing command is sent right after this; `next` maps the current
    /// state to the one the call sets at once.
    pub(crate) fn issue(&self, next: impl FnOnce(T) -> T) {
        let mut g = self.lock();
        g.issued += 1;
        g.value = next(g.value);
    }

    /// Task: after applying `applied` state-changing commands, the core's state is `value`.
    pub(crate) fn settle(&self, applied: u64, value: T) {
        let mut g = self.lock();
        if g.issued == applied {
            g.value = value;
        }
    }

    /// Task: the final state, whatever was issued (the client closed).
    pub(crate) fn force(&self, value: T) {
        self.lock().value = value;
    }
}
