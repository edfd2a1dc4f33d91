//! Event delivery to the event streams: waiting for a full stream (the default, lossless
//! backpressure) or, in the lossy mode, dropping the event and reporting the loss with a
//! `Lagged` notice as soon as the stream has room again.

use tokio::sync::mpsc;

use crate::event::{ClientEvent, StreamPosition, SubscriptionEvent};

/// Events that can report a loss.
pub(crate) trait Lag: Sized {
    fn lagged(loss: &Loss) -> Self;
    /// The offset of a publication event (0 when unpositioned), `None` for other events.
    fn publication_offset(&self) -> Option<u64>;
}
impl Lag for ClientEvent {
    fn lagged(loss: &Loss) -> Self {
        Self::Lagged {
            missed: loss.missed,
        }
    }
    fn publication_offset(&self) -> Option<u64> {
        match self {
            Self::Publication(p) => Some(p.offset),
            _ => None,
        }
    }
}
impl Lag for SubscriptionEvent {
    fn lagged(loss: &Loss) -> Self {
        Self::Lagged {
            missed: loss.missed,
            publications: loss.publications,
            recover_from: loss.recover_from.clone(),
        }
    }
    fn publication_offset(&self) -> Option<u64> {
        match self {
            Self::Publication(p) => Some(p.offset),
            _ => None,
        }
    }
}

/// What a lossy listener lost and has not been told yet.
#[derive(Default)]
pub(crate) struct Loss {
    missed: u64,
    publications: u64,
    recover_from: Option<StreamPosition>,
}

pub(crate) struct Listener<T> {
    tx: mpsc::Sender<T>,
    loss: Loss,
}

impl<T> Listener<T> {
    pub(crate) fn new(tx: mpsc::Sender<T>) -> Self {
        Self {
            tx,
            loss: Loss::default(),
        }
    }
}

impl<T: Lag> Listener<T> {
    /// Delivers the pending `Lagged` notice if there is room: `Some(true)` when nothing is
    /// pending any more, `Some(false)` while the stream is still full, `None` once closed.
    fn flush_loss(&mut self) -> Option<bool> {
        if self.loss.missed == 0 {
            return Some(true);
        }
        match self.tx.try_send(T::lagged(&self.loss)) {
            Ok(()) => {
                self.loss = Loss::default();
                Some(true)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Some(false),
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }
}

/// What one lossy delivery dropped.
#[derive(Default)]
pub(crate) struct Dropped {
    pub(crate) publications: u64,
    /// The lowest offset just before a dropped positioned publication.
    pub(crate) rewind_to: Option<u64>,
    /// Some listener still has a loss to report.
    pub(crate) lagging: bool,
}

/// Delivers to every listener without blocking (lossy mode); drops closed listeners. A full
/// stream loses the event, and is told with a `Lagged` notice as soon as it has room.
/// `epoch` gives the stream epoch for the notice's position.
pub(crate) fn deliver<T: Clone + Lag>(
    listeners: &mut Vec<Listener<T>>,
    ev: &T,
    epoch: &dyn Fn() -> String,
) -> Dropped {
    let mut d = Dropped::default();
    listeners.retain_mut(|l| {
        let Some(room) = l.flush_loss() else {
            return false;
        };
        if room {
            match l.tx.try_send(ev.clone()) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
        }
        l.loss.missed += 1;
        if let Some(offset) = ev.publication_offset() {
            l.loss.publications += 1;
            d.publications += 1;
            if offset > 0 && l.loss.recover_from.is_none() {
                let before = offset - 1;
                l.loss.recover_from = Some(StreamPosition {
                    offset: before,
                    epoch: epoch(),
                });
                d.rewind_to = Some(d.rewind_to.map_or(before, |o| o.min(before)));
            }
        }
        d.lagging = true;
        true
    });
    d
}

/// Retries the pending `Lagged` notices; true while some are still pending.
pub(crate) fn retry_losses<T: Lag>(listeners: &mut Vec<Listener<T>>) -> bool {
    let mut pending = false;
    listeners.retain_mut(|l| match l.flush_loss() {
        None => false,
        Some(done) => {
            pending |= !done;
            true
        }
    });
    pending
}

/// Delivers to every listener, waiting while a stream is full (backpressure: the task reads
/// nothing from the socket meanwhile); drops closed listeners.
pub(crate) async fn deliver_waiting<T: Clone>(listeners: &mut Vec<Listener<T>>, ev: &T) {
    let mut i = 0;
    while i < listeners.len() {
        if listeners[i].tx.send(ev.clone()).await.is_err() {
            listeners.remove(i);
        } else {
            i += 1;
        }
    }
}
