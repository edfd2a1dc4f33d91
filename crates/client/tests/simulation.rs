//! Deterministic simulation of the sans-IO core against a simulated server, network and clock.
//!
//! Each run is a pure function of its seed: the simulated user, server, network latency, faults
//! (dropped connections with random close codes, lost pings, token expiry, history overflow,
//! server restarts with new epochs, unsubscribe pushes) and the core's own jitter all draw from
//! RNGs seeded by it. Invariants are checked after every step:
//!
//! - only the seed-allowed client and subscription state transitions happen, and the core's
//!   reported state always matches the events it emitted;
//! - every call is resolved exactly once (and all are resolved after `close`);
//! - on recoverable channels no publication is lost, duplicated or reordered unless a
//!   `subscribed` event reported `recovered: false`; delta-compressed payloads are intact;
//! - frames only go to the current transport and decode as commands; pongs only answer pings;
//! - no timer is left behind: a disconnected or closed core has no deadline.
//!
//! Reproduce a failure with `SIM_SEED=<seed> cargo test -p gyre-client --test simulation`.
//! `SIM_RUNS` sets the number of runs (default 2000).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use bytes::Bytes;
use gyre_client::core::{
    CallId, CallResult, Config, Core, Output, Request, Scope, SubConfig, TransportId,
};
use gyre_client::{ClientEvent, Error, State, SubscriptionEvent, SubscriptionState};
use gyre_protocol::{self as proto, Protocol, codec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHANNELS: [&str; 4] = ["a", "b", "d", "$p"];
const HISTORY: usize = 16;
const PING_MS: u64 = 25_000;

fn sub_config(ch: &str) -> SubConfig {
    SubConfig {
        recoverable: ch != "b",
        positioned: ch != "b",
        delta: ch == "d",
        has_get_token: ch == "$p",
        min_resubscribe_delay: 200,
        max_resubscribe_delay: 5_000,
        ..Default::default()
    }
}

/// A token is "<kind>:<expires at ms>".
fn make_token(kind: &str, exp: u64) -> String {
    format!("{kind}:{exp}")
}

fn token_exp(t: &str) -> Option<u64> {
    t.split_once(':').and_then(|(_, e)| e.parse().ok())
}

#[derive(Debug)]
enum Ev {
    ToServer(TransportId, Bytes),
    ToClient(TransportId, Bytes),
    Opened(TransportId),
    Closed(TransportId, Option<u16>, String),
    Token(u64, Option<String>, Result<String, String>),
}

struct Stream {
    epoch: String,
    top: u64,
    pubs: VecDeque<(u64, Bytes)>,
}

struct ConnSub {
    delta: bool,
    prev: Option<Bytes>,
    expires_at: Option<u64>,
}

struct Conn {
    id: TransportId,
    connected: bool,
    subs: BTreeMap<String, ConnSub>,
    expires_at: Option<u64>,
    next_ping: u64,
    awaiting_pong: bool,
    silent: bool,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: u64,
    seq: u64,
    protocol: Protocol,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: BTreeMap<usize, Ev>,
    next_ev: usize,
    last_to_client: u64,
    last_to_server: u64,
    core: Core,
    streams: BTreeMap<String, Stream>,
    conn: Option<Conn>,
    require_token: bool,
    // observation
    state: State,
    sub_state: BTreeMap<String, SubscriptionState>,
    outstanding: BTreeSet<CallId>,
    last_pos: BTreeMap<String, Option<(String, u64)>>,
    published: BTreeMap<(String, String, u64), Bytes>,
    delivered: u64,
    lost_reported: u64,
    connects: u64,
    stats: BTreeMap<&'static str, u64>,
    trace: Vec<String>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let protocol = if rng.random_bool(0.5) {
            Protocol::Json
        } else {
            Protocol::Protobuf
        };
        let require_token = rng.random_bool(0.5);
        let cfg = Config {
            protocol,
            has_get_token: require_token,
            timeout: 3_000,
            min_reconnect_delay: 100,
            max_reconnect_delay: 8_000,
            max_server_ping_delay: 5_000,
            ..Default::default()
        };
        Self {
            seed,
            core: Core::new(cfg, seed ^ 0x5eed),
            rng,
            now: 0,
            seq: 0,
            protocol,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_ev: 0,
            last_to_client: 0,
            last_to_server: 0,
            streams: BTreeMap::new(),
            conn: None,
            require_token,
            state: State::Disconnected,
            sub_state: BTreeMap::new(),
            outstanding: BTreeSet::new(),
            last_pos: BTreeMap::new(),
            published: BTreeMap::new(),
            delivered: 0,
            lost_reported: 0,
            connects: 0,
            stats: BTreeMap::new(),
            trace: Vec::new(),
        }
    }

    fn fail(&self, msg: &str) -> ! {
        let tail: Vec<&String> = self.trace.iter().rev().take(40).collect();
        let mut t = String::new();
        for l in tail.into_iter().rev() {
            t.push_str(l);
            t.push('\n');
        }
        panic!(
            "seed {} failed at t={}ms: {msg}\nlast trace:\n{t}reproduce: SIM_SEED={} cargo test -p gyre-client --test simulation",
            self.seed, self.now, self.seed
        );
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let k = self.next_ev;
        self.next_ev += 1;
        self.events.insert(k, ev);
        self.queue.push(Reverse((at, self.seq, k)));
    }

    fn latency(&mut self) -> u64 {
        if self.rng.random_bool(0.05) {
            self.rng.random_range(200..2_000) // delay spike
        } else {
            self.rng.random_range(1..40)
        }
    }

    fn send_to_client(&mut self, id: TransportId, frame: Bytes) {
        let at = (self.now + self.latency()).max(self.last_to_client);
        self.last_to_client = at;
        self.schedule(at, Ev::ToClient(id, frame));
    }

    fn close_to_client(&mut self, id: TransportId, code: Option<u16>, reason: &str) {
        let at = (self.now + self.latency()).max(self.last_to_client);
        self.last_to_client = at;
        self.schedule(at, Ev::Closed(id, code, reason.into()));
    }

    fn epoch(&mut self) -> String {
        (0..6)
            .map(|_| char::from(b'a' + self.rng.random_range(0..26u8)))
            .collect()
    }

    fn stream(&mut self, ch: &str) -> &mut Stream {
        if !self.streams.contains_key(ch) {
            let epoch = self.epoch();
            self.streams.insert(
                ch.to_owned(),
                Stream {
                    epoch,
                    top: 0,
                    pubs: VecDeque::new(),
                },
            );
        }
        self.streams.get_mut(ch).expect("just inserted")
    }

    fn encode_reply(&self, r: &proto::Reply) -> Bytes {
        codec::encode(self.protocol, r).expect("server replies encode")
    }

    /// Payload as the wire carries it for a subscription (delta quirk in JSON).
    fn wire_data(&self, delta_negotiated: bool, payload: &[u8]) -> Bytes {
        if delta_negotiated && self.protocol == Protocol::Json {
            let text = String::from_utf8(payload.to_vec()).expect("ascii");
            Bytes::from(serde_json::to_string(&text).expect("string"))
        } else {
            Bytes::copy_from_slice(payload)
        }
    }

    fn pub_for(&self, cs: &mut ConnSub, offset: u64, data: &Bytes) -> proto::Publication {
        let (payload, is_delta) = match (&cs.prev, cs.delta) {
            (Some(prev), true) => (Bytes::from(fossil_delta::delta(data, prev)), true),
            _ => (data.clone(), false),
        };
        if cs.delta {
            cs.prev = Some(data.clone());
        }
        proto::Publication {
            data: self.wire_data(cs.delta, &payload),
            offset,
            delta: is_delta,
            ..Default::default()
        }
    }

    /// Appends to a stream and fans out to the connection.
    fn publish(&mut self, ch: &str, data: Bytes) {
        let s = self.stream(ch);
        s.top += 1;
        let off = s.top;
        s.pubs.push_back((off, data.clone()));
        while s.pubs.len() > HISTORY {
            s.pubs.pop_front();
        }
        let epoch = s.epoch.clone();
        self.published
            .insert((ch.to_owned(), epoch, off), data.clone());
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if conn.connected
            && let Some(cs) = conn.subs.get_mut(ch)
        {
            let p = self.pub_for(cs, off, &data);
            let reply = proto::Reply {
                push: Some(proto::Push {
                    channel: ch.to_owned(),
                    publication: Some(p),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let f = self.encode_reply(&reply);
            self.send_to_client(conn.id, f);
        }
        self.conn = Some(conn);
    }

    fn backend_publish(&mut self, ch: &str) {
        self.seq += 1;
        let data = Bytes::from(format!(
            r#"{{"ch":"{ch}","n":{},"pad":"lorem ipsum dolor sit amet"}}"#,
            self.seq
        ));
        self.publish(ch, data);
    }

    fn kill_conn(&mut self, code: Option<u16>, reason: &str) {
        if let Some(c) = self.conn.take() {
            self.trace
                .push(format!("{} server closes {:?} {code:?}", self.now, c.id));
            self.close_to_client(c.id, code, reason);
        }
    }

    // ----- server side ---------------------------------------------------------------------

    fn server_frame(&mut self, id: TransportId, frame: &[u8]) {
        if self.conn.as_ref().map(|c| c.id) != Some(id) {
            return;
        }
        let cmds: Vec<proto::Command> = match codec::decode_all(self.protocol, frame) {
            Ok(c) => c,
            Err(e) => self.fail(&format!("client sent an undecodable frame: {e}")),
        };
        let mut out = Vec::new();
        for cmd in cmds {
            if self.conn.is_none() {
                return;
            }
            self.server_command(cmd, &mut out);
        }
        if let Some(c) = &self.conn
            && !out.is_empty()
        {
            let id = c.id;
            let frame = codec::join_units(self.protocol, &out);
            self.send_to_client(id, frame);
        }
    }

    fn err(id: u32, code: u32, msg: &str, temporary: bool) -> proto::Reply {
        proto::Reply {
            id,
            error: Some(proto::Error {
                code,
                message: msg.into(),
                temporary,
            }),
            ..Default::default()
        }
    }

    fn server_command(&mut self, cmd: proto::Command, out: &mut Vec<Bytes>) {
        let now = self.now;
        let id = cmd.id;
        let connected = self.conn.as_ref().is_some_and(|c| c.connected);
        if cmd == proto::Command::default() {
            let conn = self.conn.as_mut().expect("conn");
            if !conn.awaiting_pong {
                self.fail("pong without a ping");
            }
            conn.awaiting_pong = false;
            return;
        }
        if let Some(c) = cmd.connect {
            if connected {
                self.fail("second connect on one connection");
            }
            if self.require_token {
                match token_exp(&c.token) {
                    None => {
                        self.kill_conn(Some(3500), "invalid token");
                        return;
                    }
                    Some(exp) if exp <= now => {
                        out.push(self.encode_reply(&Self::err(id, 109, "token expired", false)));
                        return;
                    }
                    _ => {}
                }
            }
            if self.rng.random_bool(0.05) {
                out.push(self.encode_reply(&Self::err(id, 100, "internal", true)));
                return;
            }
            let exp = if self.require_token {
                token_exp(&c.token)
            } else {
                None
            };
            let silent = self.rng.random_bool(0.05);
            let conn = self.conn.as_mut().expect("conn");
            conn.connected = true;
            conn.expires_at = exp;
            conn.silent = silent;
            conn.next_ping = now + PING_MS;
            self.connects += 1;
            let r = proto::Reply {
                id,
                connect: Some(proto::ConnectResult {
                    client: format!("c{}", self.connects),
                    ping: (PING_MS / 1000) as u32,
                    pong: true,
                    expires: exp.is_some(),
                    ttl: exp.map_or(0, |e| ((e - now) / 1000) as u32),
                    ..Default::default()
                }),
                ..Default::default()
            };
            out.push(self.encode_reply(&r));
            return;
        }
        if !connected {
            self.fail("command before connect reply");
        }
        if let Some(s) = cmd.subscribe {
            let ch = s.channel.clone();
            if self.conn.as_ref().expect("conn").subs.contains_key(&ch) {
                out.push(self.encode_reply(&Self::err(id, 105, "already subscribed", false)));
                return;
            }
            let mut sub_exp = None;
            if ch == "$p" {
                match token_exp(&s.token) {
                    None => self.fail("subscribe to $p without token"),
                    Some(e) if e <= now => {
                        out.push(self.encode_reply(&Self::err(id, 109, "token expired", false)));
                        return;
                    }
                    Some(e) => sub_exp = Some(e),
                }
            }
            if self.rng.random_bool(0.05) {
                out.push(self.encode_reply(&Self::err(id, 111, "too many", true)));
                return;
            }
            let delta = s.delta == "fossil";
            let recoverable = s.recoverable;
            let st = self.stream(&ch);
            let (epoch, top) = (st.epoch.clone(), st.top);
            let mut res = proto::SubscribeResult {
                recoverable,
                positioned: s.positioned || recoverable,
                epoch: epoch.clone(),
                offset: top,
                delta,
                expires: sub_exp.is_some(),
                ttl: sub_exp.map_or(0, |e| ((e - now) / 1000) as u32),
                ..Default::default()
            };
            let mut cs = ConnSub {
                delta,
                prev: None,
                expires_at: sub_exp,
            };
            if s.recover && recoverable {
                res.was_recovering = true;
                let first = st.pubs.front().map_or(top + 1, |p| p.0);
                if s.epoch == epoch && s.offset <= top && s.offset + 1 >= first {
                    res.recovered = true;
                    res.offset = s.offset;
                    let pubs: Vec<(u64, Bytes)> =
                        st.pubs.iter().filter(|p| p.0 > s.offset).cloned().collect();
                    for (off, data) in pubs {
                        let p = self.pub_for(&mut cs, off, &data);
                        res.publications.push(p);
                    }
                }
            }
            self.conn.as_mut().expect("conn").subs.insert(ch, cs);
            out.push(self.encode_reply(&proto::Reply {
                id,
                subscribe: Some(res),
                ..Default::default()
            }));
            return;
        }
        if let Some(u) = cmd.unsubscribe {
            self.conn.as_mut().expect("conn").subs.remove(&u.channel);
            out.push(self.encode_reply(&proto::Reply {
                id,
                unsubscribe: Some(proto::UnsubscribeResult {}),
                ..Default::default()
            }));
            return;
        }
        if let Some(p) = cmd.publish {
            // Flush what was produced so far so ordering matches a real server.
            if let Some(c) = &self.conn
                && !out.is_empty()
            {
                let id = c.id;
                let f = codec::join_units(self.protocol, &std::mem::take(out));
                self.send_to_client(id, f);
            }
            self.publish(&p.channel, p.data);
            out.push(self.encode_reply(&proto::Reply {
                id,
                publish: Some(proto::PublishResult {}),
                ..Default::default()
            }));
            return;
        }
        if let Some(h) = cmd.history {
            let st = self.stream(&h.channel);
            let r = proto::HistoryResult {
                publications: Vec::new(),
                epoch: st.epoch.clone(),
                offset: st.top,
            };
            out.push(self.encode_reply(&proto::Reply {
                id,
                history: Some(r),
                ..Default::default()
            }));
            return;
        }
        if cmd.presence_stats.is_some() {
            out.push(self.encode_reply(&proto::Reply {
                id,
                presence_stats: Some(proto::PresenceStatsResult {
                    num_clients: 1,
                    num_users: 1,
                }),
                ..Default::default()
            }));
            return;
        }
        if cmd.rpc.is_some() {
            if self.rng.random_bool(0.2) {
                return; // never answered: the client must time out
            }
            out.push(self.encode_reply(&Self::err(id, 108, "not available", false)));
            return;
        }
        if cmd.send.is_some() {
            return;
        }
        if let Some(r) = cmd.refresh {
            self.stat("refresh");
            match token_exp(&r.token) {
                Some(e) if e > now => {
                    let conn = self.conn.as_mut().expect("conn");
                    conn.expires_at = Some(e);
                    out.push(self.encode_reply(&proto::Reply {
                        id,
                        refresh: Some(proto::RefreshResult {
                            expires: true,
                            ttl: ((e - now) / 1000) as u32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }));
                }
                _ => self.kill_conn(Some(3005), "connection expired"),
            }
            return;
        }
        if let Some(r) = cmd.sub_refresh {
            self.stat("sub_refresh");
            let conn = self.conn.as_mut().expect("conn");
            let Some(cs) = conn.subs.get_mut(&r.channel) else {
                out.push(self.encode_reply(&Self::err(id, 103, "permission denied", false)));
                return;
            };
            match token_exp(&r.token) {
                Some(e) if e > now => {
                    cs.expires_at = Some(e);
                    out.push(self.encode_reply(&proto::Reply {
                        id,
                        sub_refresh: Some(proto::SubRefreshResult {
                            expires: true,
                            ttl: ((e - now) / 1000) as u32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }));
                }
                _ => out.push(self.encode_reply(&Self::err(id, 110, "expired", false))),
            }
            return;
        }
        self.fail(&format!("unexpected command {id}"));
    }

    fn server_timers(&mut self) {
        let now = self.now;
        let Some(conn) = &mut self.conn else {
            return;
        };
        if !conn.connected {
            return;
        }
        let id = conn.id;
        if let Some(e) = conn.expires_at
            && now > e + 25_000
        {
            self.kill_conn(Some(3005), "connection expired");
            return;
        }
        let expired: Vec<String> = conn
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at.is_some_and(|e| now > e + 25_000))
            .map(|(c, _)| c.clone())
            .collect();
        for ch in &expired {
            conn.subs.remove(ch);
        }
        for ch in expired {
            let r = proto::Reply {
                push: Some(proto::Push {
                    channel: ch,
                    unsubscribe: Some(proto::Unsubscribe {
                        code: 2501,
                        reason: "subscription expired".into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let f = codec::encode(self.protocol, &r).expect("encodes");
            self.send_to_client(id, f);
        }
        let Some(conn) = &mut self.conn else {
            return;
        };
        if now >= conn.next_ping {
            conn.next_ping = now + PING_MS;
            if conn.awaiting_pong {
                self.kill_conn(Some(3012), "no pong");
                return;
            }
            if !conn.silent {
                conn.awaiting_pong = true;
                let f = self.protocol.empty_message();
                self.send_to_client(id, f);
            }
        }
    }

    // ----- client side ---------------------------------------------------------------------

    fn drain(&mut self) {
        while let Some(o) = self.core.poll_output() {
            self.trace.push(format!("{} out {o:?}", self.now));
            match o {
                Output::Open(t) => {
                    let lat = self.latency();
                    if self.rng.random_bool(0.1) {
                        self.schedule(self.now + lat, Ev::Closed(t, None, "refused".into()));
                    } else {
                        if let Some(old) = self.conn.take() {
                            self.fail(&format!("open while {:?} still open", old.id));
                        }
                        self.conn = Some(Conn {
                            id: t,
                            connected: false,
                            subs: BTreeMap::new(),
                            expires_at: None,
                            next_ping: u64::MAX,
                            awaiting_pong: false,
                            silent: false,
                        });
                        self.schedule(self.now + lat, Ev::Opened(t));
                    }
                }
                Output::Close { transport, .. } => {
                    if self.conn.as_ref().is_some_and(|c| c.id == transport) {
                        self.conn = None;
                    }
                }
                Output::Send { transport, frame } => {
                    if self.core.transport() != Some(transport) {
                        self.fail("frame sent to a stale transport");
                    }
                    if let Err(e) = codec::decode_all::<proto::Command>(self.protocol, &frame) {
                        self.fail(&format!("undecodable frame: {e}"));
                    }
                    let at = (self.now + self.latency()).max(self.last_to_server);
                    self.last_to_server = at;
                    self.schedule(at, Ev::ToServer(transport, frame));
                }
                Output::Token(req) => {
                    let lat = self.latency() * 3;
                    let roll = self.rng.random_range(0..100);
                    let kind = if req.channel.is_some() { "s" } else { "c" };
                    let result = if roll < 8 {
                        Err("backend unavailable".to_owned())
                    } else if roll < 9 {
                        Ok(String::new())
                    } else if roll < 15 {
                        Ok(make_token(kind, self.now + lat)) // expires almost at once
                    } else {
                        let ttl = self.rng.random_range(20_000..200_000);
                        Ok(make_token(kind, self.now + ttl))
                    };
                    self.schedule(self.now + lat, Ev::Token(req.id, req.channel, result));
                }
                Output::Resolve { call, result } => {
                    if !self.outstanding.remove(&call) {
                        self.fail(&format!("{call:?} resolved twice or never issued"));
                    }
                    if let Err(Error::Protocol(e)) = &result {
                        self.fail(&format!("protocol error in a call: {e}"));
                    }
                    if let Ok(CallResult::Sent | CallResult::Ready) = result {}
                }
                Output::Client(ev) => self.client_event(ev),
                Output::Subscription { channel, event } => self.sub_event(&channel, event),
            }
        }
    }

    fn stat(&mut self, k: &'static str) {
        *self.stats.entry(k).or_default() += 1;
    }

    fn client_event(&mut self, ev: ClientEvent) {
        match &ev {
            ClientEvent::Connecting { code: 2, .. } => self.stat("no-ping reconnects"),
            ClientEvent::Disconnected { code: 1, .. } => self.stat("unauthorized"),
            ClientEvent::Disconnected { .. } => self.stat("disconnected"),
            ClientEvent::Error {
                error: Error::Token(_),
                ..
            } => self.stat("token errors"),
            _ => {}
        }
        let next = match &ev {
            ClientEvent::Connecting { .. } => Some(State::Connecting),
            ClientEvent::Connected(_) => Some(State::Connected),
            ClientEvent::Disconnected { .. } => Some(State::Disconnected),
            ClientEvent::Closed => Some(State::Closed),
            ClientEvent::Publication(p) => {
                // Only for channels outside the client-side registry (here: leftovers
                // of a removed subscription still in flight).
                if self.core.subscription_state(&p.channel).is_some() {
                    self.fail(&format!("client-level publication for {}", p.channel))
                }
                None
            }
            _ => None,
        };
        if let Some(next) = next {
            use State::*;
            let ok = matches!(
                (self.state, next),
                (Disconnected, Connecting)
                    | (Connecting, Connected)
                    | (Connected, Connecting)
                    | (Connecting, Disconnected)
                    | (Connected, Disconnected)
                    | (Disconnected | Connecting | Connected, Closed)
            );
            if !ok {
                self.fail(&format!("bad transition {:?} -> {next:?}", self.state));
            }
            self.state = next;
        }
    }

    fn sub_event(&mut self, ch: &str, ev: SubscriptionEvent) {
        use SubscriptionState::*;
        let cur = *self.sub_state.get(ch).unwrap_or(&Unsubscribed);
        let next = match &ev {
            SubscriptionEvent::Subscribing { .. } => Some(Subscribing),
            SubscriptionEvent::Subscribed(_) => Some(Subscribed),
            SubscriptionEvent::Unsubscribed { .. } => Some(Unsubscribed),
            _ => None,
        };
        if let Some(next) = next {
            let ok = matches!(
                (cur, next),
                (Unsubscribed, Subscribing)
                    | (Subscribing, Subscribed)
                    | (Subscribed, Subscribing)
                    | (Subscribing | Subscribed, Unsubscribed)
            );
            if !ok {
                self.fail(&format!("{ch}: bad transition {cur:?} -> {next:?}"));
            }
            self.sub_state.insert(ch.to_owned(), next);
        }
        let recoverable = sub_config(ch).recoverable;
        match ev {
            SubscriptionEvent::Subscribed(ctx) => {
                if ctx.recovered {
                    self.stat("recovered");
                }
                if ctx.recovered && !ctx.was_recovering {
                    self.fail("recovered without was_recovering");
                }
                if !recoverable {
                    return;
                }
                let pos = ctx.stream_position.clone().expect("position");
                let last = self.last_pos.get(ch).cloned().flatten();
                if ctx.recovered {
                    match last {
                        Some((e, o)) if e == pos.epoch && o == pos.offset => {}
                        other => self.fail(&format!(
                            "{ch}: recovered from {pos:?} but last delivered {other:?}"
                        )),
                    }
                } else {
                    if ctx.was_recovering {
                        self.lost_reported += 1;
                    }
                    self.last_pos
                        .insert(ch.to_owned(), Some((pos.epoch, pos.offset)));
                }
            }
            SubscriptionEvent::Publication(p) => {
                self.delivered += 1;
                if ch == "d" {
                    self.stat("delta-channel publications");
                }
                if cur != Subscribed {
                    self.fail(&format!("{ch}: publication while {cur:?}"));
                }
                if !recoverable {
                    return;
                }
                let Some((epoch, last)) = self.last_pos.get(ch).cloned().flatten() else {
                    self.fail(&format!("{ch}: publication without position"));
                };
                if p.offset != last + 1 {
                    self.fail(&format!(
                        "{ch}: got offset {} after {last} (lost or duplicated)",
                        p.offset
                    ));
                }
                match self
                    .published
                    .get(&(ch.to_owned(), epoch.clone(), p.offset))
                {
                    Some(d) if *d == p.data => {}
                    other => self.fail(&format!(
                        "{ch}: payload mismatch at {}: got {:?}, published {other:?}",
                        p.offset, p.data
                    )),
                }
                self.last_pos.insert(ch.to_owned(), Some((epoch, p.offset)));
            }
            _ => {}
        }
    }

    fn check(&self) {
        if self.core.state() != self.state {
            self.fail(&format!(
                "core state {:?} but events say {:?}",
                self.core.state(),
                self.state
            ));
        }
        for ch in CHANNELS {
            let tracked = self.sub_state.get(ch).copied();
            if let Some(s) = self.core.subscription_state(ch)
                && tracked.unwrap_or(SubscriptionState::Unsubscribed) != s
            {
                self.fail(&format!("{ch}: core says {s:?}, events say {tracked:?}"));
            }
        }
        if self.core.pending_calls() != self.outstanding.len() {
            self.fail(&format!(
                "core has {} pending calls, {} unresolved",
                self.core.pending_calls(),
                self.outstanding.len()
            ));
        }
        if matches!(self.state, State::Disconnected | State::Closed)
            && self.core.next_deadline().is_some()
        {
            self.fail(&format!(
                "timer left behind in {:?}: {:?}",
                self.state,
                self.core.next_deadline()
            ));
        }
        if let Some(d) = self.core.next_deadline()
            && d < self.now
        {
            self.fail("deadline in the past after handling timers");
        }
    }

    fn call(&mut self, scope: Scope, req: Request) {
        let id = self.core.call(self.now, scope, req);
        // Resolutions may already be queued; record before draining.
        self.outstanding.insert(id);
    }

    fn user_action(&mut self) {
        let now = self.now;
        let ch = CHANNELS[self.rng.random_range(0..CHANNELS.len())];
        let roll = self.rng.random_range(0..100);
        self.trace.push(format!("{now} user roll {roll} on {ch}"));
        match roll {
            0..=9 => self.core.connect(now),
            10..=11 => self.core.disconnect(now),
            12..=21 => {
                if self.core.subscription_state(ch).is_none() {
                    self.core
                        .new_subscription(ch, sub_config(ch))
                        .expect("new subscription");
                    self.sub_state
                        .insert(ch.to_owned(), SubscriptionState::Unsubscribed);
                    self.last_pos.insert(ch.to_owned(), None);
                } else if self.core.new_subscription(ch, sub_config(ch))
                    != Err(Error::DuplicateSubscription(ch.to_owned()))
                {
                    self.fail("duplicate subscription accepted");
                }
                let _ = self.core.subscribe(now, ch);
            }
            22..=26 => {
                let _ = self.core.unsubscribe(now, ch);
            }
            27 if self.core.remove_subscription(now, ch).is_ok() => {
                self.drain();
                self.sub_state.remove(ch);
                self.last_pos.remove(ch);
            }
            28..=45 => {
                self.seq += 1;
                let data = Bytes::from(format!(r#"{{"from":"client","n":{}}}"#, self.seq));
                if self.core.subscription_state(ch).is_some() && roll % 2 == 0 {
                    self.call(
                        Scope::Subscription(ch.to_owned()),
                        Request::Publish {
                            channel: ch.to_owned(),
                            data,
                        },
                    );
                } else {
                    self.call(
                        Scope::Client,
                        Request::Publish {
                            channel: ch.to_owned(),
                            data,
                        },
                    );
                }
            }
            46..=50 => self.call(
                Scope::Client,
                Request::History {
                    channel: ch.to_owned(),
                    options: Default::default(),
                },
            ),
            51..=53 => self.call(
                Scope::Client,
                Request::Rpc {
                    method: "m".into(),
                    data: Bytes::from_static(b"{}"),
                },
            ),
            54..=55 => self.call(
                Scope::Client,
                Request::PresenceStats {
                    channel: ch.to_owned(),
                },
            ),
            56 => self.call(
                Scope::Client,
                Request::Send {
                    data: Bytes::from_static(b"{}"),
                },
            ),
            57..=58 => self.call(Scope::Client, Request::Ready),
            59 if self.core.subscription_state(ch).is_some() => {
                self.call(Scope::Subscription(ch.to_owned()), Request::Ready);
            }
            // Faults and backend activity.
            60..=79 => self.backend_publish(ch),
            80 => {
                for _ in 0..HISTORY + 4 {
                    self.backend_publish(ch); // history overflow
                }
            }
            81..=83 => {
                let codes: [Option<u16>; 7] = [
                    None,
                    Some(1006),
                    Some(3001),
                    Some(3005),
                    Some(4000),
                    Some(3503),
                    Some(4501),
                ];
                let code = codes[self.rng.random_range(0..codes.len())];
                self.kill_conn(code, "fault");
            }
            84 => {
                // Server restart: streams get new epochs, history is lost.
                self.streams.clear();
                self.kill_conn(Some(3001), "shutdown");
            }
            85..=86 => {
                let id = self.conn.as_ref().filter(|c| c.connected).map(|c| c.id);
                let subscribed = self
                    .conn
                    .as_mut()
                    .is_some_and(|c| c.subs.remove(ch).is_some());
                if let (Some(id), true) = (id, subscribed) {
                    let code = if roll == 85 { 2500 } else { 2000 };
                    let r = proto::Reply {
                        push: Some(proto::Push {
                            channel: ch.to_owned(),
                            unsubscribe: Some(proto::Unsubscribe {
                                code,
                                reason: "server".into(),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let f = self.encode_reply(&r);
                    self.send_to_client(id, f);
                }
            }
            87 => {
                if let Some(c) = self.conn.as_mut() {
                    c.silent = true; // pings stop: the client must notice
                }
            }
            _ => {} // idle
        }
    }

    fn handle_event(&mut self, ev: Ev) {
        let now = self.now;
        self.trace.push(format!("{now} ev {ev:?}"));
        match ev {
            Ev::ToServer(id, frame) => self.server_frame(id, &frame),
            Ev::ToClient(id, frame) => self.core.transport_frame(now, id, &frame),
            Ev::Opened(id) => {
                if self.conn.as_ref().is_some_and(|c| c.id == id) {
                    self.core.transport_opened(now, id);
                }
            }
            Ev::Closed(id, code, reason) => {
                if self.conn.as_ref().is_some_and(|c| c.id == id) {
                    self.conn = None;
                }
                self.core.transport_closed(now, id, code, &reason);
            }
            Ev::Token(id, None, r) => self.core.connection_token(now, id, r),
            Ev::Token(id, Some(ch), r) => self.core.subscription_token(now, id, &ch, r),
        }
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            let user_at = self.now + self.rng.random_range(0..3_000);
            let ev_at = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let dl = self.core.next_deadline();
            let srv = self.conn.as_ref().filter(|c| c.connected).map(|c| {
                c.next_ping
                    .min(c.expires_at.map_or(u64::MAX, |e| e + 25_001))
            });
            let t = [Some(user_at), ev_at, dl, srv]
                .into_iter()
                .flatten()
                .min()
                .expect("user action always possible");
            self.now = self.now.max(t);
            if ev_at == Some(t) {
                let Reverse((_, _, k)) = self.queue.pop().expect("peeked");
                let ev = self.events.remove(&k).expect("event");
                self.handle_event(ev);
            } else if dl == Some(t) {
                self.core.handle_timeout(self.now);
            } else if srv == Some(t) {
                self.server_timers();
            } else {
                self.user_action();
            }
            self.drain();
            self.check();
        }
        // Wind down: close, then everything must be resolved and quiet.
        self.core.close(self.now);
        self.drain();
        self.check();
        if !self.outstanding.is_empty() {
            self.fail(&format!("unresolved after close: {:?}", self.outstanding));
        }
        for ch in CHANNELS {
            if self
                .sub_state
                .get(ch)
                .is_some_and(|s| *s != SubscriptionState::Unsubscribed)
            {
                self.fail(&format!("{ch} not unsubscribed after close"));
            }
        }
    }
}

#[test]
fn simulation_many_seeds() {
    let runs: u64 = std::env::var("SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let seeds: Vec<u64> = match std::env::var("SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(s) => vec![s],
        None => (0..runs).collect(),
    };
    let (mut delivered, mut lost, mut connects) = (0, 0, 0);
    let mut stats: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in seeds {
        let mut sim = Sim::new(seed);
        sim.run(400);
        delivered += sim.delivered;
        lost += sim.lost_reported;
        connects += sim.connects;
        for (k, v) in sim.stats {
            *stats.entry(k).or_default() += v;
        }
    }
    eprintln!("delivered {delivered}, lost reported {lost}, connects {connects}, {stats:?}");
    for k in [
        "refresh",
        "sub_refresh",
        "recovered",
        "no-ping reconnects",
        "token errors",
    ] {
        if runs >= 500 {
            assert!(stats.get(k).copied().unwrap_or(0) > 0, "{k} never happened");
        }
    }
    // The runs must exercise the interesting paths, not idle.
    assert!(connects > runs, "too few connects: {connects}");
    assert!(
        delivered > runs * 5,
        "too few publications delivered: {delivered}"
    );
    assert!(lost > 0, "history overflow never produced recovered:false");
}

#[test]
fn simulation_is_deterministic() {
    let trace = |seed| {
        let mut sim = Sim::new(seed);
        sim.run(300);
        sim.trace
    };
    assert_eq!(trace(17), trace(17));
}
