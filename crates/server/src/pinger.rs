//! One shared timer for every connection's pings and pong deadlines.
//!
//! Sessions are spread over one-second buckets; each tick sends `Ping` to one bucket and
//! `CheckPong` to the bucket pinged `pong_timeout` earlier. No connection owns a timer.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;

use crate::outbound::{Outbound, SessionHandle};

/// The shared ping scheduler.
#[derive(Debug)]
pub(crate) struct Pinger {
    buckets: Vec<Mutex<Vec<Weak<SessionHandle>>>>,
    pong_lag: usize,
}

impl Pinger {
    /// A scheduler for a ping interval and a pong timeout (zero interval: no pings).
    pub(crate) fn new(interval: Duration, pong_timeout: Duration) -> Self {
        let slots = interval.as_secs() as usize;
        Self {
            buckets: (0..slots).map(|_| Mutex::default()).collect(),
            pong_lag: pong_timeout.as_secs() as usize,
        }
    }

    /// Ping interval in seconds (0: disabled).
    pub(crate) fn interval_secs(&self) -> u32 {
        self.buckets.len() as u32
    }

    /// Whether clients must answer pings.
    pub(crate) fn expects_pong(&self) -> bool {
        !self.buckets.is_empty() && self.pong_lag > 0
    }

    /// Schedules a session's pings.
    pub(crate) fn register(&self, handle: &Arc<SessionHandle>) {
        if self.buckets.is_empty() {
            return;
        }
        let slot = rand::rng().random_range(0..self.buckets.len());
        self.buckets[slot].lock().push(Arc::downgrade(handle));
    }

    /// Runs the scheduler until `shutdown` is cancelled.
    pub(crate) async fn run(&self, shutdown: tokio_util::sync::CancellationToken) {
        if self.buckets.is_empty() {
            return;
        }
        let mut tick: usize = 0;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let n = self.buckets.len();
            self.buckets[tick % n].lock().retain(|w| match w.upgrade() {
                Some(h) => h.send(Outbound::Ping) || !h.is_closing(),
                None => false,
            });
            if self.expects_pong() && tick >= self.pong_lag {
                let slot = (tick - self.pong_lag) % n;
                for w in self.buckets[slot].lock().iter() {
                    if let Some(h) = w.upgrade() {
                        h.send(Outbound::CheckPong);
                    }
                }
            }
            tick += 1;
        }
    }
}
