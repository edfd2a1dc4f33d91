//! The thin tokio driver around [`Core`]: one task owns the WebSocket, the timers, the token
//! callbacks and event delivery. Handles talk to it over an mpsc channel of [`Cmd`]s.
//!
//! Event delivery: each event stream is a bounded channel. By default the task waits while a
//! stream is full (backpressure); in the lossy mode it is fed with `try_send`, and a full
//! stream loses events and is told how many with a `Lagged` event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use gyre_protocol::Protocol;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Connector, Limits, MaybeTlsStream, Message, WebSocketStream};

use crate::Error;
use crate::core::{CallId, CallResult, Core, Millis, Output, Request, Scope, TransportId};
use crate::delivery::{Listener, deliver, deliver_waiting, retry_losses};
use crate::event::{ClientEvent, State, SubscriptionEvent, SubscriptionState};
use crate::options::{ClientOptions, GetToken, SubscriptionOptions, TokenContext};
use crate::proxy::Proxy;
use crate::state_cell::StateCell;
use crate::stats::ClientStats;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = oneshot::Sender<Result<CallResult, Error>>;
type TokenDone = (u64, Option<String>, Result<String, String>);
type TokenFut = Pin<Box<dyn Future<Output = TokenDone> + Send>>;

/// Whether the outputs of `cmd` must be carried out before the next command is applied: the
/// events of a removed subscription go to its own registry entry, which a new subscription
/// to the same channel in the same burst would replace.
fn ends_burst(cmd: &Cmd) -> bool {
    matches!(cmd, Cmd::RemoveSubscription(_) | Cmd::Close(_))
}

/// How often a lossy stream that lost events is offered its `Lagged` notice again.
const LOSS_RETRY: Duration = Duration::from_millis(10);

/// Largest WebSocket message accepted from the server.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// What a handle asks the task to do.
pub(crate) enum Cmd {
    Connect,
    Disconnect,
    Close(oneshot::Sender<()>),
    NewSubscription(String, SubscriptionOptions, StateCell<SubscriptionState>),
    RemoveSubscription(String),
    Subscribe(String),
    Unsubscribe(String),
    Call(Scope, Request, Reply),
    Ready(Option<String>, Reply),
    ClientEvents(mpsc::Sender<ClientEvent>),
    Stats(oneshot::Sender<ClientStats>),
    SetToken(String),
    SetData(Bytes),
    SetHeaders(Vec<(String, String)>),
    SetConnectHeaders(BTreeMap<String, String>),
    SubscriptionEvents(String, mpsc::Sender<SubscriptionEvent>),
}

struct SubEntry {
    get_token: Option<GetToken>,
    state: StateCell<SubscriptionState>,
    /// Subscribe/unsubscribe commands applied, for [`StateCell::settle`].
    applied: u64,
    listeners: Vec<Listener<SubscriptionEvent>>,
}

struct Driver {
    core: Core,
    start: Instant,
    url: String,
    connector: Option<Arc<Connector>>,
    proxy: Option<Proxy>,
    headers: Vec<(String, String)>,
    get_token: Option<GetToken>,
    get_subscription_token: Option<GetToken>,
    state: StateCell<State>,
    /// Connect/disconnect commands applied, for [`StateCell::settle`].
    applied: u64,
    listeners: Vec<Listener<ClientEvent>>,
    subs: HashMap<String, SubEntry>,
    calls: BTreeMap<CallId, Reply>,
    ws: Option<(TransportId, Ws)>,
    opening: Option<(TransportId, JoinHandle<Result<Ws, Error>>)>,
    tokens: FuturesUnordered<TokenFut>,
    pending_removals: Vec<String>,
    write_timeout: Duration,
    backpressure: bool,
    frames_received: u64,
    publications_dropped: u64,
    /// Streams with a loss not reported yet: `None` for the client's, else the channel's.
    lagging: BTreeSet<Option<String>>,
}

/// Starts the driver task.
pub(crate) fn spawn(
    options: ClientOptions,
    rx: mpsc::UnboundedReceiver<Cmd>,
    state: StateCell<State>,
) -> Result<(), Error> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::Configuration("a tokio runtime is required".into()))?;
    let seed = options.seed.unwrap_or_else(rand::random);
    let driver = Driver {
        write_timeout: Duration::from_millis(options.core.timeout.max(1)),
        core: Core::new(options.core, seed),
        start: Instant::now(),
        url: options.url,
        connector: options.connector,
        proxy: options.proxy,
        backpressure: options.backpressure,
        headers: options.headers,
        get_token: options.get_token,
        get_subscription_token: options.get_subscription_token,
        state,
        applied: 0,
        listeners: Vec::new(),
        subs: HashMap::new(),
        calls: BTreeMap::new(),
        ws: None,
        opening: None,
        tokens: FuturesUnordered::new(),
        pending_removals: Vec::new(),
        frames_received: 0,
        publications_dropped: 0,
        lagging: BTreeSet::new(),
    };
    handle.spawn(driver.run(rx));
    Ok(())
}

async fn open(
    url: String,
    headers: Vec<(String, String)>,
    protocol: Protocol,
    connector: Option<Arc<Connector>>,
    proxy: Option<Proxy>,
) -> Result<Ws, Error> {
    let t = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
    let mut builder = tokio_websockets::ClientBuilder::new()
        .uri(&url)
        .map_err(|e| Error::Configuration(e.to_string()))?
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)));
    let mut all = headers;
    if protocol == Protocol::Protobuf {
        all.push((
            "sec-websocket-protocol".into(),
            "centrifuge-protobuf".into(),
        ));
    }
    for (k, v) in all {
        let name = http::HeaderName::try_from(k.as_str()).map_err(|e| t(&e))?;
        let value = http::HeaderValue::try_from(v.as_str()).map_err(|e| t(&e))?;
        builder = builder.add_header(name, value).map_err(|e| t(&e))?;
    }
    if let Some(proxy) = proxy {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Error::Configuration(format!("bad URL: {e}")))?;
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = proxy.tunnel(&host, port).await?;
        // `wss://` always has its rustls connector (see `ClientOptions::build`).
        let stream = match connector.as_deref() {
            Some(c) if tls => c.wrap(&host, tcp).await.map_err(|e| t(&e))?,
            _ => MaybeTlsStream::Plain(tcp),
        };
        let (ws, _resp) = builder.connect_on(stream).await.map_err(|e| t(&e))?;
        return Ok(ws);
    }
    // `wss://` always brings its rustls connector (see `ClientOptions::build`), so the
    // library never picks its plaintext default for it.
    if let Some(c) = connector.as_deref() {
        builder = builder.connector(c);
    }
    let (ws, _resp) = builder.connect().await.map_err(|e| t(&e))?;
    Ok(ws)
}

async fn next_message(ws: &mut Option<(TransportId, Ws)>) -> Option<Result<Message, String>> {
    match ws {
        Some((_, ws)) => ws.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

async fn opened(
    opening: &mut Option<(TransportId, JoinHandle<Result<Ws, Error>>)>,
) -> Result<Ws, Error> {
    match opening {
        Some((_, h)) => match h.await {
            Ok(r) => r,
            Err(e) => Err(Error::Transport(e.to_string())),
        },
        None => std::future::pending().await,
    }
}

impl Driver {
    fn now(&self) -> Millis {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut close_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map(|ms| self.start + Duration::from_millis(ms));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Close(done)) => {
                        close_waiters.push(done);
                        let now = self.now();
                        self.core.close(now);
                    }
                    Some(cmd) => {
                        let burst = !ends_burst(&cmd);
                        self.command(cmd);
                        if burst {
                            self.drain_commands(&mut rx, &mut close_waiters);
                        }
                    }
                    None => {
                        let now = self.now();
                        self.core.close(now);
                    }
                },
                msg = next_message(&mut self.ws) => self.message(msg),
                r = opened(&mut self.opening) => {
                    let now = self.now();
                    if let Some((id, _)) = self.opening.take() {
                        match r {
                            Ok(ws) => {
                                self.ws = Some((id, ws));
                                self.core.transport_opened(now, id);
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "websocket connect failed");
                                self.core.transport_closed(now, id, None, &e.to_string());
                            }
                        }
                    }
                }
                Some((id, channel, result)) = self.tokens.next(), if !self.tokens.is_empty() => {
                    let now = self.now();
                    match channel {
                        None => self.core.connection_token(now, id, result),
                        Some(ch) => self.core.subscription_token(now, id, &ch, result),
                    }
                }
                () = tokio::time::sleep(LOSS_RETRY), if !self.lagging.is_empty() => {
                    self.retry_losses();
                }
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
            }
            self.process().await;
            if self.core.state() == State::Closed {
                break;
            }
        }
        // Closed: nothing may keep running.
        if let Some((_, h)) = self.opening.take() {
            h.abort();
        }
        if let Some((_, mut ws)) = self.ws.take() {
            let _ = tokio::time::timeout(self.write_timeout, ws.close()).await;
        }
        self.calls.clear();
        drop(rx);
        for w in close_waiters {
            let _ = w.send(());
        }
    }

    /// Tells lossy streams that have room again what they lost.
    fn retry_losses(&mut self) {
        for key in std::mem::take(&mut self.lagging) {
            let pending = match &key {
                None => retry_losses(&mut self.listeners),
                Some(ch) => self
                    .subs
                    .get_mut(ch)
                    .is_some_and(|e| retry_losses(&mut e.listeners)),
            };
            if pending {
                self.lagging.insert(key);
            }
        }
    }

    /// Applies the commands already waiting (up to a bound), with the core held, so that a
    /// burst of calls (say, thousands of `subscribe`) goes out as a few large frames.
    fn drain_commands(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Cmd>,
        close_waiters: &mut Vec<oneshot::Sender<()>>,
    ) {
        const MAX_BURST: usize = 4096;
        self.core.hold();
        for _ in 0..MAX_BURST {
            match rx.try_recv() {
                Ok(Cmd::Close(done)) => {
                    close_waiters.push(done);
                    let now = self.now();
                    self.core.close(now);
                    break;
                }
                Ok(cmd) => {
                    let end = ends_burst(&cmd);
                    self.command(cmd);
                    if end {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        self.core.release();
    }

    fn command(&mut self, cmd: Cmd) {
        let now = self.now();
        match cmd {
            Cmd::Connect => {
                self.applied += 1;
                self.core.connect(now);
            }
            Cmd::Disconnect => {
                self.applied += 1;
                self.core.disconnect(now);
            }
            Cmd::Close(_) => {}
            Cmd::NewSubscription(ch, options, state) => {
                let get_token = options
                    .get_token
                    .or_else(|| self.get_subscription_token.clone());
                let mut cfg = options.core;
                cfg.has_get_token = get_token.is_some();
                if self.core.new_subscription(&ch, cfg).is_ok() {
                    self.subs.insert(
                        ch,
                        SubEntry {
                            get_token,
                            state,
                            applied: 0,
                            listeners: Vec::new(),
                        },
                    );
                }
            }
            Cmd::RemoveSubscription(ch) => {
                let _ = self.core.remove_subscription(now, &ch);
                // Events of the unsubscribe are delivered before the entry goes.
                self.pending_removals.push(ch);
            }
            Cmd::Subscribe(ch) => {
                if let Some(e) = self.subs.get_mut(&ch) {
                    e.applied += 1;
                }
                let _ = self.core.subscribe(now, &ch);
                self.settle_sub(&ch);
            }
            Cmd::Unsubscribe(ch) => {
                if let Some(e) = self.subs.get_mut(&ch) {
                    e.applied += 1;
                }
                let _ = self.core.unsubscribe(now, &ch);
                self.settle_sub(&ch);
            }
            Cmd::Call(scope, request, reply) => {
                let id = self.core.call(now, scope, request);
                self.calls.insert(id, reply);
            }
            Cmd::Ready(channel, reply) => {
                let scope = channel.map_or(Scope::Client, Scope::Subscription);
                let id = self.core.call(now, scope, Request::Ready);
                self.calls.insert(id, reply);
            }
            Cmd::ClientEvents(tx) => self.listeners.push(Listener::new(tx)),
            Cmd::SetToken(t) => self.core.set_token(t),
            Cmd::SetData(d) => self.core.set_data(d),
            Cmd::SetHeaders(h) => self.headers = h,
            Cmd::SetConnectHeaders(h) => self.core.set_connect_headers(h),
            Cmd::Stats(tx) => {
                let stats = ClientStats::new(
                    self.core.stats(),
                    self.frames_received,
                    self.publications_dropped,
                );
                let _ = tx.send(stats);
            }
            Cmd::SubscriptionEvents(ch, tx) => {
                if let Some(e) = self.subs.get_mut(&ch) {
                    e.listeners.push(Listener::new(tx));
                }
            }
        }
    }

    fn message(&mut self, msg: Option<Result<Message, String>>) {
        let now = self.now();
        let Some(id) = self.ws.as_ref().map(|(id, _)| *id) else {
            return;
        };
        match msg {
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                self.frames_received += 1;
                let payload = Bytes::from(m.into_payload());
                self.core.transport_frame(now, id, &payload);
            }
            Some(Ok(m)) if m.is_close() => {
                let (code, reason) = m
                    .as_close()
                    .map(|(c, r)| (Some(u16::from(c)), r.to_owned()))
                    .unwrap_or((None, String::new()));
                self.ws = None;
                self.core.transport_closed(now, id, code, &reason);
            }
            Some(Ok(_)) => {} // ping/pong frames are answered by the library
            Some(Err(e)) => {
                self.ws = None;
                self.core.transport_closed(now, id, None, &e);
            }
            None => {
                self.ws = None;
                self.core
                    .transport_closed(now, id, None, "connection closed");
            }
        }
    }

    /// Carries out every queued output of the core.
    async fn process(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Open(id) => {
                    if let Some((_, h)) = self.opening.take() {
                        h.abort();
                    }
                    let fut = open(
                        self.url.clone(),
                        self.headers.clone(),
                        self.core.protocol(),
                        self.connector.clone(),
                        self.proxy.clone(),
                    );
                    self.opening = Some((id, tokio::spawn(fut)));
                }
                Output::Close {
                    transport,
                    code,
                    reason,
                } => {
                    if self
                        .opening
                        .as_ref()
                        .is_some_and(|(id, _)| *id == transport)
                        && let Some((_, h)) = self.opening.take()
                    {
                        h.abort();
                    }
                    if self.ws.as_ref().is_some_and(|(id, _)| *id == transport)
                        && let Some((_, mut ws)) = self.ws.take()
                    {
                        let code = CloseCode::try_from(code).unwrap_or(CloseCode::NORMAL_CLOSURE);
                        let _ = tokio::time::timeout(
                            self.write_timeout,
                            ws.send(Message::close(Some(code), &reason)),
                        )
                        .await;
                    }
                }
                Output::Send { transport, frame } => self.write(transport, frame).await,
                Output::Client(ev) => {
                    let state = match &ev {
                        ClientEvent::Connecting { .. } => Some(State::Connecting),
                        ClientEvent::Connected(_) => Some(State::Connected),
                        ClientEvent::Disconnected { .. } => Some(State::Disconnected),
                        ClientEvent::Closed => Some(State::Closed),
                        _ => None,
                    };
                    match state {
                        Some(State::Closed) => self.state.force(State::Closed),
                        Some(s) => self.state.settle(self.applied, s),
                        None => {}
                    }
                    if self.backpressure {
                        deliver_waiting(&mut self.listeners, &ev).await;
                    } else {
                        let d = deliver(&mut self.listeners, &ev, &String::new);
                        self.publications_dropped += d.publications;
                        if d.lagging {
                            self.lagging.insert(None);
                        }
                    }
                }
                Output::Subscription { channel, event } => {
                    if let Some(e) = self.subs.get_mut(&channel) {
                        let state = match &event {
                            SubscriptionEvent::Subscribing { .. } => {
                                Some(SubscriptionState::Subscribing)
                            }
                            SubscriptionEvent::Subscribed(_) => Some(SubscriptionState::Subscribed),
                            SubscriptionEvent::Unsubscribed { .. } => {
                                Some(SubscriptionState::Unsubscribed)
                            }
                            _ => None,
                        };
                        if let Some(s) = state {
                            e.state.settle(e.applied, s);
                        }
                        if self.backpressure {
                            deliver_waiting(&mut e.listeners, &event).await;
                        } else {
                            let core = &self.core;
                            let epoch = || {
                                core.subscription_position(&channel)
                                    .map(|p| p.epoch)
                                    .unwrap_or_default()
                            };
                            let d = deliver(&mut e.listeners, &event, &epoch);
                            self.publications_dropped += d.publications;
                            if let Some(offset) = d.rewind_to {
                                self.core.publications_lost(&channel, offset);
                            }
                            if d.lagging {
                                self.lagging.insert(Some(channel));
                            }
                        }
                    }
                }
                Output::Resolve { call, result } => {
                    if let Some(tx) = self.calls.remove(&call) {
                        let _ = tx.send(result);
                    }
                }
                Output::Token(req) => {
                    let cb = match &req.channel {
                        None => self.get_token.clone(),
                        Some(ch) => self.subs.get(ch).and_then(|e| e.get_token.clone()),
                    };
                    let id = req.id;
                    let channel = req.channel.clone();
                    let fut: TokenFut =
                        match cb {
                            Some(cb) => {
                                let f = cb(TokenContext {
                                    channel: req.channel,
                                });
                                Box::pin(async move {
                                    let r = f.await.map_err(|e| e.to_string());
                                    (id, channel, r)
                                })
                            }
                            None => Box::pin(async move {
                                (id, channel, Err("no token callback".to_owned()))
                            }),
                        };
                    self.tokens.push(fut);
                }
            }
        }
        for ch in std::mem::take(&mut self.pending_removals) {
            if self.core.subscription_state(&ch).is_none() {
                self.subs.remove(&ch);
            }
        }
    }

    /// Writes the core's state of `channel` unless a later call is still in flight.
    fn settle_sub(&self, channel: &str) {
        if let (Some(e), Some(s)) = (
            self.subs.get(channel),
            self.core.subscription_state(channel),
        ) {
            e.state.settle(e.applied, s);
        }
    }

    async fn write(&mut self, transport: TransportId, frame: Bytes) {
        let Some((id, ws)) = self.ws.as_mut() else {
            return;
        };
        if *id != transport {
            return;
        }
        let msg = match self.core.protocol() {
            Protocol::Json => Message::text(frame),
            Protocol::Protobuf => Message::binary(frame),
        };
        let failed = match tokio::time::timeout(self.write_timeout, ws.send(msg)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("write timed out".to_owned()),
        };
        if let Some(e) = failed {
            let id = *id;
            self.ws = None;
            let now = self.now();
            self.core.transport_closed(now, id, None, &e);
        }
    }
}
