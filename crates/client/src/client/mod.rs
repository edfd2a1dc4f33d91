//! The cheap, clonable handles: [`Client`] and [`Subscription`], and [`EventStream`].

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::core::{CallResult, Request, Scope};
use crate::event::{
    ClientEvent, HistoryOptions, HistoryResult, PresenceResult, PresenceStatsResult, State,
    SubscriptionEvent, SubscriptionState,
};
use crate::options::{ClientOptions, SubscriptionOptions};
use crate::state_cell::StateCell;
use crate::stats::ClientStats;
use crate::transport::{self, Cmd};

mod json;
mod settings;

/// A stream of events, in order. Implements [`futures_util::Stream`]; [`EventStream::recv`]
/// is the same without the trait.
///
/// Bounded: when the stream falls the configured capacity behind, the client waits for it
/// (see [`ClientOptions::backpressure`]); in the lossy mode the newest events are dropped
/// instead and a `Lagged` notice is delivered as soon as the stream has room.
#[derive(Debug)]
pub struct EventStream<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> EventStream<T> {
    /// The next event; `None` once the client task has ended (closed or all handles gone).
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }
}

impl<T> Stream for EventStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

/// A registry entry: the generation of the subscription (handles of a removed subscription
/// keep an older one and become inert) and its state.
struct Entry {
    generation: u64,
    state: StateCell<SubscriptionState>,
}

struct Shared {
    tx: mpsc::UnboundedSender<Cmd>,
    /// Written by the task on every state event, and by the handle at once when a call
    /// changes the state (`connect`, `disconnect`), so `state()` never lags the call.
    state: StateCell<State>,
    registry: Mutex<Registry>,
    event_capacity: usize,
    timeout: Duration,
    protocol: gyre_protocol::Protocol,
}

#[derive(Default)]
struct Registry {
    subs: BTreeMap<String, Entry>,
    next_generation: u64,
}

/// A client of a Gyre/Centrifugo server: a cheap handle to one background task.
///
/// Clones share the connection. The task ends on [`Client::close`] or when every `Client`
/// and [`Subscription`] handle is dropped.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish()
    }
}

fn closed<T>(_: T) -> Error {
    Error::Closed
}

impl Client {
    /// Starts the task; used by [`ClientOptions::build`].
    pub(crate) fn start(options: ClientOptions) -> Result<Self, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state_tx = StateCell::new(State::Disconnected);
        let event_capacity = options.event_capacity;
        let timeout = Duration::from_millis(options.core.timeout);
        let protocol = options.core.protocol;
        transport::spawn(options, rx, state_tx.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                tx,
                state: state_tx,
                registry: Mutex::new(Registry::default()),
                event_capacity,
                timeout,
                protocol,
            }),
        })
    }

    fn cmd(&self, cmd: Cmd) -> Result<(), Error> {
        self.shared.tx.send(cmd).map_err(closed)
    }

    async fn call(&self, scope: Scope, request: Request) -> Result<CallResult, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Call(scope, request, tx))?;
        rx.await.map_err(closed)?
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.shared.state.get()
    }

    /// Starts connecting (returns at once; see [`Client::ready`]). No-op unless
    /// `Disconnected`; the state is `Connecting` when this returns.
    pub fn connect(&self) {
        self.shared.state.issue(|s| match s {
            State::Disconnected => State::Connecting,
            s => s,
        });
        let _ = self.cmd(Cmd::Connect);
    }

    /// Disconnects; subscriptions stay in the registry and resubscribe on the next connect.
    /// The state is `Disconnected` when this returns (unless the client is closed).
    pub fn disconnect(&self) {
        self.shared.state.issue(|s| match s {
            State::Connecting | State::Connected => State::Disconnected,
            s => s,
        });
        let _ = self.cmd(Cmd::Disconnect);
    }

    /// Closes the client for good: subscriptions end `Unsubscribed`, pending calls fail with
    /// [`Error::Closed`], and the background task has exited when this returns.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits until connected; fails when disconnected, closed or after `timeout` (the
    /// configured operation timeout when `None`).
    pub async fn ready(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let t = timeout.unwrap_or(self.shared.timeout);
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Ready(None, tx))?;
        match tokio::time::timeout(t, rx).await {
            Ok(r) => r.map_err(closed)?.map(|_| ()),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Counters of the work this client did (see [`ClientStats`]).
    pub async fn stats(&self) -> Result<ClientStats, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Stats(tx))?;
        rx.await.map_err(closed)
    }

    /// A new stream of client events (register it before `connect` to see everything).
    pub fn events(&self) -> EventStream<ClientEvent> {
        let (tx, rx) = mpsc::channel(self.shared.event_capacity);
        let _ = self.cmd(Cmd::ClientEvents(tx));
        EventStream { rx }
    }

    /// Adds a subscription to the registry (`Unsubscribed`; call
    /// [`Subscription::subscribe`]). Fails with [`Error::DuplicateSubscription`] when the
    /// channel is already there.
    pub fn new_subscription(
        &self,
        channel: impl Into<String>,
        options: SubscriptionOptions,
    ) -> Result<Subscription, Error> {
        let channel = channel.into();
        if self.state() == State::Closed {
            return Err(Error::Closed);
        }
        let mut reg = self.registry();
        if reg.subs.contains_key(&channel) {
            return Err(Error::DuplicateSubscription(channel));
        }
        let state = StateCell::new(SubscriptionState::Unsubscribed);
        self.cmd(Cmd::NewSubscription(
            channel.clone(),
            options,
            state.clone(),
        ))?;
        reg.next_generation += 1;
        let generation = reg.next_generation;
        reg.subs.insert(
            channel.clone(),
            Entry {
                generation,
                state: state.clone(),
            },
        );
        Ok(Subscription {
            client: self.clone(),
            channel: channel.into(),
            generation,
            state,
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The subscription to `channel` in the registry.
    pub fn get_subscription(&self, channel: &str) -> Option<Subscription> {
        self.registry().subs.get(channel).map(|e| Subscription {
            client: self.clone(),
            channel: channel.into(),
            generation: e.generation,
            state: e.state.clone(),
        })
    }

    /// All subscriptions in the registry.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.registry()
            .subs
            .iter()
            .map(|(channel, e)| Subscription {
                client: self.clone(),
                channel: channel.as_str().into(),
                generation: e.generation,
                state: e.state.clone(),
            })
            .collect()
    }

    /// Unsubscribes and removes a subscription from the registry.
    pub fn remove_subscription(&self, sub: &Subscription) -> Result<(), Error> {
        let mut reg = self.registry();
        if reg.subs.get(&*sub.channel).map(|e| e.generation) != Some(sub.generation) {
            return Err(Error::SubscriptionNotFound(sub.channel.to_string()));
        }
        reg.subs.remove(&*sub.channel);
        // Sent under the registry lock, so it is ordered before any command for a new
        // subscription to the same channel.
        self.cmd(Cmd::RemoveSubscription(sub.channel.to_string()))
    }

    /// Publishes into a channel (server-side subscriptions or any channel the server allows).
    /// Waits for the connection while connecting.
    pub async fn publish(&self, channel: &str, data: impl Into<Bytes>) -> Result<(), Error> {
        let req = Request::Publish {
            channel: channel.to_owned(),
            data: data.into(),
        };
        self.call(Scope::Client, req).await.map(|_| ())
    }

    /// Calls an RPC method; returns the result data.
    pub async fn rpc(&self, method: &str, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        let req = Request::Rpc {
            method: method.to_owned(),
            data: data.into(),
        };
        match self.call(Scope::Client, req).await? {
            CallResult::Rpc(d) => Ok(d),
            _ => Err(Error::Protocol("unexpected result".into())),
        }
    }

    /// Sends an asynchronous message to the server (no reply; the server hands it to its
    /// message handler or proxy). Waits for the connection while connecting.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let req = Request::Send { data: data.into() };
        self.call(Scope::Client, req).await.map(|_| ())
    }

    /// Old name of [`Client::send`].
    #[deprecated(note = "use `Client::send`")]
    pub async fn send_message(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(data).await
    }

    /// History of a channel.
    pub async fn history(
        &self,
        channel: &str,
        options: HistoryOptions,
    ) -> Result<HistoryResult, Error> {
        history(
            self.call(Scope::Client, history_req(channel, options))
                .await,
        )
    }

    /// Presence of a channel.
    pub async fn presence(&self, channel: &str) -> Result<PresenceResult, Error> {
        let req = Request::Presence {
            channel: channel.to_owned(),
        };
        presence(self.call(Scope::Client, req).await)
    }

    /// Presence stats of a channel.
    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStatsResult, Error> {
        let req = Request::PresenceStats {
            channel: channel.to_owned(),
        };
        presence_stats(self.call(Scope::Client, req).await)
    }
}

fn history_req(channel: &str, options: HistoryOptions) -> Request {
    Request::History {
        channel: channel.to_owned(),
        options,
    }
}

fn history(r: Result<CallResult, Error>) -> Result<HistoryResult, Error> {
    match r? {
        CallResult::History(h) => Ok(h),
        _ => Err(Error::Protocol("unexpected result".into())),
    }
}

fn presence(r: Result<CallResult, Error>) -> Result<PresenceResult, Error> {
    match r? {
        CallResult::Presence(p) => Ok(p),
        _ => Err(Error::Protocol("unexpected result".into())),
    }
}

fn presence_stats(r: Result<CallResult, Error>) -> Result<PresenceStatsResult, Error> {
    match r? {
        CallResult::PresenceStats(p) => Ok(p),
        _ => Err(Error::Protocol("unexpected result".into())),
    }
}

/// A client-side subscription: a cheap handle; the subscription itself lives in the client's
/// registry until [`Client::remove_subscription`].
#[derive(Clone)]
pub struct Subscription {
    client: Client,
    channel: Arc<str>,
    /// Which subscription to the channel this handle refers to: after its removal from the
    /// registry the handle is inert, even when the channel is subscribed again.
    generation: u64,
    state: StateCell<SubscriptionState>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("state", &self.state())
            .finish()
    }
}

impl Subscription {
    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Current state.
    pub fn state(&self) -> SubscriptionState {
        self.state.get()
    }

    /// Sends `cmd` if this handle's subscription is still in the registry (under its lock,
    /// so the command can't reach a later subscription to the same channel).
    fn send_current(&self, cmd: impl FnOnce() -> Cmd) -> Result<(), Error> {
        let reg = self.client.registry();
        if reg.subs.get(&*self.channel).map(|e| e.generation) != Some(self.generation) {
            return Err(Error::SubscriptionNotFound(self.channel.to_string()));
        }
        self.client.cmd(cmd())
    }

    /// Starts subscribing (returns at once; works before `connect` too). No-op unless
    /// `Unsubscribed`, or when the subscription was removed from the registry; the state is
    /// `Subscribing` when this returns.
    pub fn subscribe(&self) {
        let _ = self.send_current(|| {
            let closed = self.client.state() == State::Closed;
            self.state.issue(|s| match s {
                SubscriptionState::Unsubscribed if !closed => SubscriptionState::Subscribing,
                s => s,
            });
            Cmd::Subscribe(self.channel.to_string())
        });
    }

    /// Unsubscribes; the stream position is kept for a later `subscribe`. The state is
    /// `Unsubscribed` when this returns. No-op on a handle of a removed subscription.
    pub fn unsubscribe(&self) {
        let _ = self.send_current(|| {
            self.state.issue(|_| SubscriptionState::Unsubscribed);
            Cmd::Unsubscribe(self.channel.to_string())
        });
    }

    /// A new stream of this subscription's events (one that ends at once on a handle of a
    /// removed subscription).
    pub fn events(&self) -> EventStream<SubscriptionEvent> {
        let (tx, rx) = mpsc::channel(self.client.shared.event_capacity);
        let _ = self.send_current(|| Cmd::SubscriptionEvents(self.channel.to_string(), tx));
        EventStream { rx }
    }

    /// Waits until subscribed; fails when unsubscribed, disconnected, closed or after
    /// `timeout` (the operation timeout when `None`).
    pub async fn ready(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let t = timeout.unwrap_or(self.client.shared.timeout);
        let (tx, rx) = oneshot::channel();
        self.send_current(|| Cmd::Ready(Some(self.channel.to_string()), tx))?;
        match tokio::time::timeout(t, rx).await {
            Ok(r) => r.map_err(closed)?.map(|_| ()),
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn call(&self, request: Request) -> Result<CallResult, Error> {
        let (tx, rx) = oneshot::channel();
        let scope = Scope::Subscription(self.channel.to_string());
        self.send_current(|| Cmd::Call(scope, request, tx))?;
        rx.await.map_err(closed)?
    }

    /// Publishes into the channel; waits until subscribed.
    pub async fn publish(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let req = Request::Publish {
            channel: self.channel.to_string(),
            data: data.into(),
        };
        self.call(req).await.map(|_| ())
    }

    /// History of the channel; waits until subscribed.
    pub async fn history(&self, options: HistoryOptions) -> Result<HistoryResult, Error> {
        history(self.call(history_req(&self.channel, options)).await)
    }

    /// Presence of the channel; waits until subscribed.
    pub async fn presence(&self) -> Result<PresenceResult, Error> {
        let req = Request::Presence {
            channel: self.channel.to_string(),
        };
        presence(self.call(req).await)
    }

    /// Presence stats of the channel; waits until subscribed.
    pub async fn presence_stats(&self) -> Result<PresenceStatsResult, Error> {
        let req = Request::PresenceStats {
            channel: self.channel.to_string(),
        };
        presence_stats(self.call(req).await)
    }
}
