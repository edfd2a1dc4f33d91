//! The shapes a push is encoded in, and the per-broadcast cache that encodes each shape once.
//!
//! A subscriber's shape is its encoding, whether its transport is unidirectional (the push is
//! written bare) or not (wrapped in a reply), and, for publications, which delta form it gets.
//! A broadcast encodes a push once per shape that some subscriber has, whatever the number of
//! subscribers.

use bytes::Bytes;
use gyre_protocol::codec::encode;
use gyre_protocol::{Protocol, Push, Reply};

use crate::outbound::SessionHandle;

/// The form of a publication's payload for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeltaForm {
    /// The payload as published (no delta negotiated).
    Plain,
    /// The full payload for a delta subscriber (JSON: as a JSON string).
    Full,
    /// A fossil patch against the previous payload.
    Patch,
}

/// Everything that makes two subscribers get different bytes for one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShapeKey {
    /// Encoding.
    pub protocol: Protocol,
    /// A bare push (unidirectional transports) instead of a reply carrying it.
    pub unidirectional: bool,
    /// Payload form.
    pub delta: DeltaForm,
}

impl ShapeKey {
    /// The number of distinct shapes.
    const COUNT: usize = 2 * 2 * 3;

    /// The shape of a session's pushes with payload form `delta`.
    pub(crate) fn of(handle: &SessionHandle, delta: DeltaForm) -> Self {
        Self {
            protocol: handle.protocol,
            unidirectional: handle.unidirectional,
            delta,
        }
    }

    fn index(self) -> usize {
        let delta = match self.delta {
            DeltaForm::Plain => 0,
            DeltaForm::Full => 1,
            DeltaForm::Patch => 2,
        };
        (delta * 2 + usize::from(self.unidirectional)) * 2 + self.protocol.index()
    }
}

/// Encodes a push in a shape: bare, or in a reply.
pub(crate) fn encode_push(key: ShapeKey, push: Push) -> Option<Bytes> {
    let encoded = if key.unidirectional {
        encode(key.protocol, &push)
    } else {
        encode(
            key.protocol,
            &Reply {
                push: Some(push),
                ..Default::default()
            },
        )
    };
    encoded.ok()
}

/// One shape's encoding in a cache.
#[derive(Debug, Clone, Default)]
enum Slot {
    /// Not encoded yet.
    #[default]
    Empty,
    /// Encoded.
    Ready(Bytes),
    /// Encoding failed (the subscribers of this shape are disconnected).
    Failed,
}

/// The encodings of one push, built on first use per shape.
#[derive(Debug, Default)]
pub(crate) struct ShapeCache {
    slots: [Slot; ShapeKey::COUNT],
}

impl ShapeCache {
    /// The push in shape `key`, built by `push` the first time this shape is asked for;
    /// `None` when it cannot be encoded.
    pub(crate) fn get(&mut self, key: ShapeKey, push: impl FnOnce() -> Push) -> Option<Bytes> {
        let slot = &mut self.slots[key.index()];
        if let Slot::Empty = slot {
            *slot = match encode_push(key, push()) {
                Some(bytes) => Slot::Ready(bytes),
                None => Slot::Failed,
            };
        }
        match slot {
            Slot::Ready(bytes) => Some(bytes.clone()),
            Slot::Empty | Slot::Failed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for protocol in [Protocol::Json, Protocol::Protobuf] {
            for unidirectional in [false, true] {
                for delta in [DeltaForm::Plain, DeltaForm::Full, DeltaForm::Patch] {
                    let key = ShapeKey {
                        protocol,
                        unidirectional,
                        delta,
                    };
                    assert!(key.index() < ShapeKey::COUNT);
                    assert!(seen.insert(key.index()), "{key:?} shares a slot");
                }
            }
        }
    }

    #[test]
    fn unidirectional_pushes_are_bare_and_encoded_once() {
        let mut cache = ShapeCache::default();
        let mut built = 0;
        let push = || Push {
            channel: "news".to_owned(),
            ..Default::default()
        };
        let uni = ShapeKey {
            protocol: Protocol::Json,
            unidirectional: true,
            delta: DeltaForm::Plain,
        };
        let bidi = ShapeKey {
            unidirectional: false,
            ..uni
        };
        for _ in 0..3 {
            let bare = cache.get(uni, || {
                built += 1;
                push()
            });
            assert_eq!(bare.as_deref(), Some(&br#"{"channel":"news"}"#[..]));
        }
        assert_eq!(built, 1);
        let wrapped = cache.get(bidi, push);
        assert_eq!(
            wrapped.as_deref(),
            Some(&br#"{"push":{"channel":"news"}}"#[..])
        );
    }
}
