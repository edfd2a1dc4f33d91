//! A map split into lock-striped shards by the hash of a channel name, so that work on
//! different channels rarely contends for one lock (the hub, the memory streams and the
//! memory presence each keep one).

use std::hash::{BuildHasher, RandomState};

use parking_lot::Mutex;

/// `n` mutex-guarded values, one chosen per key by its hash.
#[derive(Debug)]
pub(crate) struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
    hasher: RandomState,
}

impl<T: Default> Sharded<T> {
    /// `n` empty shards (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<T> Sharded<T> {
    /// The shard holding `key`.
    pub(crate) fn get(&self, key: &str) -> &Mutex<T> {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[index]
    }

    /// Every shard (for sweeps and counts).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shards.iter()
    }
}
