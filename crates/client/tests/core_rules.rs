//! Rules of the sans-IO core, driven with a seeded RNG and a simulated clock so the timing is
//! exact and the tests deterministic: a subscribe timeout fails one subscription, not the
//! connection, and its retries back off exponentially (full jitter, capped); publications
//! the driver could not deliver (lossy mode) are asked for again by the next recovering
//! subscribe.

use gyre_client::core::{Config, Core, Output, SubConfig, TransportId};
use gyre_client::{ClientEvent, Error, ErrorKind, State, SubscriptionEvent, SubscriptionState};
use serde_json::{Value, json};

const TIMEOUT: u64 = 1_000;
const MIN: u64 = 100;
const MAX: u64 = 10_000;

struct Harness {
    core: Core,
    t: TransportId,
    now: u64,
}

#[derive(Default)]
struct Seen {
    /// Commands of each frame written.
    frames: Vec<Vec<Value>>,
    client: Vec<ClientEvent>,
    sub: Vec<(String, SubscriptionEvent)>,
    closed: bool,
}

impl Harness {
    fn connected() -> Self {
        let cfg = Config {
            timeout: TIMEOUT,
            max_server_ping_delay: 0,
            ..Config::default()
        };
        let mut core = Core::new(cfg, 11);
        core.connect(0);
        let mut t = None;
        while let Some(out) = core.poll_output() {
            if let Output::Open(id) = out {
                t = Some(id);
            }
        }
        let t = t.expect("transport opened");
        let mut h = Self { core, t, now: 0 };
        h.core.transport_opened(0, t);
        let connect = h.drain().frames.concat();
        let id = connect[0]["id"].as_u64().expect("connect id");
        h.reply(json!({"id": id, "connect": {"client": "c", "version": "v"}}));
        assert_eq!(h.core.state(), State::Connected);
        h
    }

    fn reply(&mut self, reply: Value) {
        let frame = reply.to_string();
        self.core
            .transport_frame(self.now, self.t, frame.as_bytes());
    }

    fn drain(&mut self) -> Seen {
        let mut seen = Seen::default();
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Send { frame, .. } => seen.frames.push(
                    frame
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice(l).expect("json command"))
                        .collect(),
                ),
                Output::Client(e) => seen.client.push(e),
                Output::Subscription { channel, event } => seen.sub.push((channel, event)),
                Output::Close { .. } | Output::Open(_) => seen.closed = true,
                _ => {}
            }
        }
        seen
    }

    /// Advances the clock to the next deadline and handles it.
    fn tick(&mut self) -> Seen {
        self.now = self.core.next_deadline().expect("a deadline is armed");
        self.core.handle_timeout(self.now);
        self.drain()
    }
}

fn subscribe_of(frames: &[Vec<Value>], channel: &str) -> Option<u64> {
    frames
        .iter()
        .flatten()
        .find(|c| c["subscribe"]["channel"] == channel)
        .and_then(|c| c["id"].as_u64())
}

#[test]
fn subscribe_timeout_retries_one_subscription_with_growing_backoff() {
    let mut h = Harness::connected();
    let sub_cfg = || SubConfig {
        min_resubscribe_delay: MIN,
        max_resubscribe_delay: MAX,
        ..SubConfig::default()
    };
    h.core.new_subscription("slow", sub_cfg()).expect("slow");
    h.core.new_subscription("fine", sub_cfg()).expect("fine");
    // Both subscribes of one held burst travel in one frame.
    h.core.hold();
    h.core.subscribe(h.now, "slow").expect("subscribe slow");
    h.core.subscribe(h.now, "fine").expect("subscribe fine");
    h.core.release();
    let seen = h.drain();
    assert_eq!(seen.frames.len(), 1, "one frame for both subscribes");
    assert_eq!(seen.frames[0].len(), 2);
    let fine = subscribe_of(&seen.frames, "fine").expect("fine subscribe");
    let mut slow = subscribe_of(&seen.frames, "slow").expect("slow subscribe");
    h.reply(json!({"id": fine, "subscribe": {}}));
    h.drain();
    assert_eq!(
        h.core.subscription_state("fine"),
        Some(SubscriptionState::Subscribed)
    );

    let mut delays = Vec::new();
    for attempt in 0..8u32 {
        // The server never answers `slow`: its timeout fires after exactly TIMEOUT.
        let sent_at = h.now;
        let seen = h.tick();
        assert_eq!(h.now, sent_at + TIMEOUT, "attempt {attempt}: reply timeout");
        assert!(!seen.closed, "the connection is kept");
        assert!(
            !seen
                .client
                .iter()
                .any(|e| matches!(e, ClientEvent::Connecting { .. })),
            "no reconnect: {:?}",
            seen.client
        );
        assert_eq!(h.core.state(), State::Connected);
        assert!(seen.sub.iter().any(|(ch, e)| ch == "slow"
            && matches!(
                e,
                SubscriptionEvent::Error {
                    kind: ErrorKind::Subscribe,
                    error: Error::Timeout
                }
            )));
        // What the server may still do with the late subscribe is undone.
        let unsub = seen
            .frames
            .iter()
            .flatten()
            .find(|c| c["unsubscribe"]["channel"] == "slow")
            .and_then(|c| c["id"].as_u64())
            .expect("unsubscribe of the timed-out channel");
        h.reply(json!({"id": unsub, "unsubscribe": {}}));
        h.drain();
        // A late reply to the abandoned command changes nothing.
        h.reply(json!({"id": slow, "subscribe": {}}));
        h.drain();
        assert_eq!(
            h.core.subscription_state("slow"),
            Some(SubscriptionState::Subscribing)
        );
        assert_eq!(
            h.core.subscription_state("fine"),
            Some(SubscriptionState::Subscribed)
        );
        // The retry comes after the backoff delay.
        let timed_out_at = h.now;
        let seen = h.tick();
        let delay = h.now - timed_out_at;
        let cap = MIN.saturating_mul(1 << attempt).min(MAX);
        let most = (MIN + cap).min(MAX);
        assert!(
            (MIN..=most).contains(&delay),
            "attempt {attempt}: delay {delay} outside [{MIN}, {most}]"
        );
        delays.push(delay);
        slow = subscribe_of(&seen.frames, "slow").expect("resubscribe sent");
    }
    // The window grows: later delays go beyond anything the first attempt could draw.
    assert!(
        delays[4..].iter().any(|d| *d > 2 * MIN),
        "delays never grew: {delays:?}"
    );
    // Success ends the retries.
    h.reply(json!({"id": slow, "subscribe": {}}));
    h.drain();
    assert_eq!(
        h.core.subscription_state("slow"),
        Some(SubscriptionState::Subscribed)
    );
    assert_eq!(h.core.next_deadline(), None, "no timer left");
}

#[test]
fn lost_publications_rewind_the_recovery_position() {
    let mut h = Harness::connected();
    let cfg = SubConfig {
        recoverable: true,
        ..SubConfig::default()
    };
    h.core.new_subscription("feed", cfg).expect("feed");
    h.core.subscribe(h.now, "feed").expect("subscribe");
    let id = subscribe_of(&h.drain().frames, "feed").expect("subscribe sent");
    h.reply(json!({"id": id, "subscribe": {
        "recoverable": true, "epoch": "e1", "offset": 10
    }}));
    for offset in 11..=20u64 {
        h.reply(json!({"push": {"channel": "feed", "pub": {"data": {}, "offset": offset}}}));
    }
    h.drain();
    assert_eq!(
        h.core.subscription_position("feed").map(|p| p.offset),
        Some(20)
    );
    // The driver could not deliver offsets 14.. (and later ones after 17).
    h.core.publications_lost("feed", 13);
    h.core.publications_lost("feed", 17);
    // Until the next subscribe nothing changes.
    assert_eq!(
        h.core.subscription_position("feed").map(|p| p.offset),
        Some(20)
    );
    // The connection drops; the resubscribe recovers from the earliest loss.
    h.core.transport_closed(h.now, h.t, None, "cut");
    h.drain();
    let t = loop {
        h.now = h.core.next_deadline().expect("reconnect armed");
        h.core.handle_timeout(h.now);
        let mut opened = None;
        while let Some(out) = h.core.poll_output() {
            if let Output::Open(t) = out {
                opened = Some(t);
            }
        }
        if let Some(t) = opened {
            break t;
        }
    };
    h.t = t;
    h.core.transport_opened(h.now, t);
    let connect = h.drain().frames.concat();
    let cid = connect[0]["id"].as_u64().expect("connect id");
    h.reply(json!({"id": cid, "connect": {"client": "c", "version": "v"}}));
    let frames = h.drain().frames;
    let sub = frames
        .iter()
        .flatten()
        .find(|c| c["subscribe"]["channel"] == "feed")
        .expect("resubscribe")
        .clone();
    assert_eq!(sub["subscribe"]["recover"], true, "{sub}");
    assert_eq!(sub["subscribe"]["offset"], 13, "{sub}");
    assert_eq!(sub["subscribe"]["epoch"], "e1", "{sub}");
}

#[test]
fn set_token_data_and_connect_headers_apply_to_the_next_connect() {
    let mut h = Harness::connected();
    h.core.set_token("t2".into());
    h.core.set_data(bytes::Bytes::from_static(br#"{"v":2}"#));
    h.core
        .set_connect_headers([("x-team".to_owned(), "blue".to_owned())].into());
    // Nothing is sent on the current connection.
    assert!(h.drain().frames.is_empty());
    h.core.disconnect(h.now);
    h.drain();
    h.core.connect(h.now);
    let mut t = None;
    while let Some(out) = h.core.poll_output() {
        if let Output::Open(id) = out {
            t = Some(id);
        }
    }
    h.t = t.expect("transport opened");
    h.core.transport_opened(h.now, h.t);
    let connect = h.drain().frames.concat();
    let c = &connect[0]["connect"];
    assert_eq!(c["token"], "t2", "{c}");
    assert_eq!(c["data"], json!({"v": 2}), "{c}");
    assert_eq!(c["headers"], json!({"x-team": "blue"}), "{c}");
}

#[test]
fn a_subscription_can_have_its_own_subscribe_timeout() {
    let mut h = Harness::connected();
    let quick = SubConfig {
        subscribe_timeout: Some(300),
        ..SubConfig::default()
    };
    h.core.new_subscription("quick", quick).expect("quick");
    h.core
        .new_subscription("default", SubConfig::default())
        .expect("default");
    h.core.subscribe(h.now, "quick").expect("subscribe");
    h.core.subscribe(h.now, "default").expect("subscribe");
    h.drain();
    let start = h.now;
    let seen = h.tick();
    assert_eq!(h.now - start, 300, "the subscription's own timeout");
    assert!(seen.sub.iter().any(|(ch, e)| ch == "quick"
        && matches!(
            e,
            SubscriptionEvent::Error {
                error: Error::Timeout,
                ..
            }
        )));
    assert!(!seen.sub.iter().any(|(ch, _)| ch == "default"));
    // The other one still has the client's timeout.
    loop {
        let seen = h.tick();
        if seen.sub.iter().any(|(ch, e)| {
            ch == "default"
                && matches!(
                    e,
                    SubscriptionEvent::Error {
                        error: Error::Timeout,
                        ..
                    }
                )
        }) {
            assert_eq!(h.now - start, TIMEOUT);
            break;
        }
        assert!(h.now < start + TIMEOUT, "default timed out late");
    }
}

impl Harness {
    /// Drops the connection now; returns the delay until the reconnect attempt opens a new
    /// transport, after which the connect reply is given.
    fn drop_and_reconnect(&mut self) -> u64 {
        self.core.transport_closed(self.now, self.t, None, "cut");
        self.drain();
        let lost_at = self.now;
        self.now = self.core.next_deadline().expect("reconnect armed");
        self.core.handle_timeout(self.now);
        let mut t = None;
        while let Some(out) = self.core.poll_output() {
            if let Output::Open(id) = out {
                t = Some(id);
            }
        }
        self.t = t.expect("reconnect opens a transport");
        self.core.transport_opened(self.now, self.t);
        let connect = self.drain().frames.concat();
        let id = connect[0]["id"].as_u64().expect("connect id");
        self.reply(json!({"id": id, "connect": {"client": "c", "version": "v"}}));
        assert_eq!(self.core.state(), State::Connected);
        self.now - lost_at
    }
}

#[test]
fn reconnect_backoff_keeps_growing_until_a_connection_proves_stable() {
    // The defaults: 500 ms – 20 s.
    const RMIN: u64 = 500;
    const RMAX: u64 = 20_000;
    let mut h = Harness::connected();
    let mut delays = Vec::new();
    for attempt in 0..6u32 {
        // Each connection fails right after its connect reply.
        let d = h.drop_and_reconnect();
        let most = (RMIN + RMIN.saturating_mul(1 << attempt).min(RMAX)).min(RMAX);
        assert!(
            (RMIN..=most).contains(&d),
            "attempt {attempt}: {d} outside [{RMIN}, {most}]"
        );
        delays.push(d);
    }
    assert!(
        delays[3..].iter().any(|d| *d > 2 * RMIN),
        "never grew: {delays:?}"
    );
    // A connection that lasted the maximum delay was a success: back to the first window.
    h.now += RMAX;
    let d = h.drop_and_reconnect();
    assert!(
        (RMIN..=2 * RMIN).contains(&d),
        "after a stable connection: {d}"
    );
}
