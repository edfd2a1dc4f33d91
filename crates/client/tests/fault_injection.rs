//! Fault injection against the real `gyre` server: a TCP proxy between the client and
//! `gyre serve` cuts (FIN or RST), stalls, delays, re-chunks and refuses connections at
//! random for a bounded time while the HTTP API publishes a numbered sequence into a
//! recoverable channel and a seeded "user" toggles subscriptions, disconnects, reconnects and
//! makes calls. Then the proxy heals and the test checks:
//!
//! - no deadlock: every SDK call returns within its timeout plus a margin;
//! - only legal state transitions were reported, and the final states are the ones the seed's
//!   action plan prescribes (connected, the recoverable subscription subscribed, the side
//!   subscription as the plan's last toggle left it; after `close()`: closed, unsubscribed);
//! - no publication of the recoverable channel is lost, duplicated or reordered, except for
//!   a gap after a `subscribed` event with `recovered: false`;
//! - no task leak: the client runs on a runtime of its own, whose alive-task count must drop
//!   to zero after `close()`, and every event stream must end.
//!
//! The seed is printed; reproduce with `FAULT_SEED=<seed>`. `FAULT_SECS` sets the chaos time
//! (default 20).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use gyre_client::{
    Client, ClientEvent, ClientOptions, Error, HistoryOptions, Protocol, State, SubscriptionEvent,
    SubscriptionOptions, SubscriptionState,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The operation timeout of the client under test.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How much longer than its own timeout any SDK call may take before it counts as hung.
const MARGIN: Duration = Duration::from_secs(3);
/// Time allowed to reach the final state once the proxy is healed.
const HEAL_TIME: Duration = Duration::from_secs(15);

// ----- the proxy -----------------------------------------------------------------------------

/// What the proxy does right now. Changed by the chaos schedule.
#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    /// Bumped to cut every open connection.
    cut: u64,
    /// Cut with RST (linger 0) rather than FIN.
    rst: bool,
    /// Hold every byte (both directions) until unstalled.
    stalled: bool,
    /// Latency added to each chunk.
    delay_ms: u64,
    /// Forward in pieces of at most this many bytes (0: as read).
    chunk: usize,
    /// Accept new connections and close them at once.
    refuse: bool,
}

async fn wait_cut(mut mode: watch::Receiver<Mode>, generation: u64) {
    loop {
        if mode.borrow_and_update().cut != generation {
            return;
        }
        if mode.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Forwards one direction: a reader stamps chunks with their arrival time, the writer sends
/// each at arrival + delay (so latency does not accumulate), holding while stalled.
async fn pump<R, W>(mut r: R, mut w: W, mode: watch::Receiver<Mode>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now(), Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut mode = mode;
        while let Some((at, data)) = rx.recv().await {
            loop {
                let m = *mode.borrow_and_update();
                if !m.stalled {
                    break;
                }
                if mode.changed().await.is_err() {
                    return;
                }
            }
            let m = *mode.borrow();
            if m.delay_ms > 0 {
                tokio::time::sleep_until(at + Duration::from_millis(m.delay_ms)).await;
            }
            let size = if m.chunk == 0 { data.len() } else { m.chunk };
            for piece in data.chunks(size.max(1)) {
                if w.write_all(piece).await.is_err() || w.flush().await.is_err() {
                    return;
                }
            }
        }
        let _ = w.shutdown().await;
    };
    // The writer ends after the reader's EOF has drained; the reader alone may end first.
    let ((), ()) = tokio::join!(reader, writer);
}

async fn serve_conn(mut client: TcpStream, upstream: u16, mode: watch::Receiver<Mode>) {
    let m = *mode.borrow();
    if m.refuse {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let rst = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        tokio::select! {
            () = pump(cr, sw, mode.clone()) => false,
            () = pump(sr, cw, mode.clone()) => false,
            () = wait_cut(mode.clone(), m.cut) => mode.borrow().rst,
        }
    };
    if rst {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Starts a proxy to `upstream`; returns its port and the mode control.
async fn start_proxy(upstream: u16) -> (u16, watch::Sender<Mode>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let port = listener.local_addr().expect("proxy addr").port();
    let (mode_tx, mode_rx) = watch::channel(Mode::default());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((s, _)) = accepted else { return };
                    conns.spawn(serve_conn(s, upstream, mode_rx.clone()));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    (port, mode_tx, task)
}

/// Runs the seeded chaos schedule until `until`, then heals. Returns a log of what it did.
async fn chaos(mode: &watch::Sender<Mode>, rng: &mut StdRng, until: Instant) -> Vec<String> {
    let mut log = Vec::new();
    let t0 = Instant::now();
    let ms = |a: u64, b: u64, rng: &mut StdRng| Duration::from_millis(rng.random_range(a..b));
    while Instant::now() < until {
        tokio::time::sleep(ms(100, 1200, rng)).await;
        let at = t0.elapsed().as_millis();
        let hold = ms(200, 3500, rng);
        match rng.random_range(0..100) {
            0..30 => {
                let rst = rng.random_bool(0.5);
                log.push(format!("{at}ms cut rst={rst}"));
                mode.send_modify(|m| {
                    m.cut += 1;
                    m.rst = rst;
                });
            }
            30..50 => {
                let cut_after = rng.random_bool(0.3);
                log.push(format!("{at}ms stall {hold:?} cut_after={cut_after}"));
                mode.send_modify(|m| m.stalled = true);
                tokio::time::sleep(hold).await;
                mode.send_modify(|m| {
                    m.stalled = false;
                    if cut_after {
                        m.cut += 1;
                    }
                });
            }
            50..70 => {
                let delay = rng.random_range(5..400);
                log.push(format!("{at}ms delay {delay}ms for {hold:?}"));
                mode.send_modify(|m| m.delay_ms = delay);
                tokio::time::sleep(hold).await;
                mode.send_modify(|m| m.delay_ms = 0);
            }
            70..80 => {
                log.push(format!("{at}ms refuse for {hold:?} (and cut)"));
                mode.send_modify(|m| {
                    m.refuse = true;
                    m.cut += 1;
                    m.rst = false;
                });
                tokio::time::sleep(hold).await;
                mode.send_modify(|m| m.refuse = false);
            }
            80..90 => {
                let chunk = rng.random_range(1..8);
                log.push(format!("{at}ms chunks of {chunk} bytes for {hold:?}"));
                mode.send_modify(|m| m.chunk = chunk);
                tokio::time::sleep(hold).await;
                mode.send_modify(|m| m.chunk = 0);
            }
            _ => log.push(format!("{at}ms calm")),
        }
    }
    let cut = mode.borrow().cut;
    mode.send_replace(Mode {
        cut,
        ..Mode::default()
    });
    log.push(format!("{}ms healed", t0.elapsed().as_millis()));
    log
}

// ----- the seeded user -----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Toggle the side subscription (subscribe when unsubscribed and vice versa).
    ToggleSide,
    /// Unsubscribe the recoverable subscription and subscribe again after a pause (ms).
    BounceMain(u64),
    /// `disconnect()`, then `connect()` after a pause (ms).
    Reconnect(u64),
    /// Nothing but calls.
    Calls,
}

/// The user's plan: (pause before, action). A pure function of the seed.
fn plan(rng: &mut StdRng, total: Duration) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    let mut t = 0;
    let end = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
    loop {
        let pause = rng.random_range(200..1500);
        t += pause;
        if t >= end {
            return out;
        }
        let action = match rng.random_range(0..10) {
            0..4 => Action::ToggleSide,
            4..6 => Action::BounceMain(rng.random_range(0..800)),
            6..7 => Action::Reconnect(rng.random_range(0..800)),
            _ => Action::Calls,
        };
        out.push((pause, action));
    }
}

/// What the plan leaves the side subscription in (it starts subscribed).
fn side_expected(plan: &[(u64, Action)]) -> SubscriptionState {
    let toggles = plan
        .iter()
        .filter(|(_, a)| *a == Action::ToggleSide)
        .count();
    if toggles % 2 == 0 {
        SubscriptionState::Subscribed
    } else {
        SubscriptionState::Unsubscribed
    }
}

/// Awaits an SDK future, failing the test when it does not return within `limit`.
async fn bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("deadlock: {what} did not return within {limit:?}"),
    }
}

/// A few calls, each of which must return (with any result) within its timeout.
async fn calls(client: &Client, main: &gyre_client::Subscription, side_channel: &str) -> usize {
    let limit = OP_TIMEOUT + MARGIN;
    let mut ok = 0;
    let r = bounded(
        "client.publish",
        limit,
        client.publish(side_channel, &br#"{"x":1}"#[..]),
    )
    .await;
    ok += usize::from(r.is_ok());
    let r = bounded(
        "sub.history",
        limit,
        main.history(HistoryOptions {
            limit: 0,
            ..Default::default()
        }),
    )
    .await;
    ok += usize::from(r.is_ok());
    let r = bounded("sub.presence_stats", limit, main.presence_stats()).await;
    ok += usize::from(r.is_ok());
    let r = bounded("client.rpc", limit, client.rpc("m", &b"{}"[..])).await;
    ok += usize::from(matches!(r, Err(Error::Server { code: 108, .. })));
    let r = bounded(
        "client.ready",
        limit,
        client.ready(Some(Duration::from_millis(500))),
    )
    .await;
    ok += usize::from(r.is_ok());
    let r = bounded(
        "sub.ready",
        limit,
        main.ready(Some(Duration::from_millis(500))),
    )
    .await;
    ok += usize::from(r.is_ok());
    ok
}

// ----- checks --------------------------------------------------------------------------------

fn client_transitions_ok(events: &[ClientEvent]) -> Result<State, String> {
    let mut state = State::Disconnected;
    for e in events {
        let next = match e {
            ClientEvent::Connecting { .. } => State::Connecting,
            ClientEvent::Connected(_) => State::Connected,
            ClientEvent::Disconnected { .. } => State::Disconnected,
            ClientEvent::Closed => State::Closed,
            ClientEvent::Lagged { .. } => return Err("client event stream lagged".into()),
            _ => continue,
        };
        let legal = matches!(
            (state, next),
            (State::Disconnected, State::Connecting)
                | (State::Connecting, State::Connected | State::Disconnected)
                | (State::Connected, State::Connecting | State::Disconnected)
                | (
                    State::Disconnected | State::Connecting | State::Connected,
                    State::Closed
                )
        );
        if !legal {
            return Err(format!("illegal client transition {state:?} -> {e:?}"));
        }
        state = next;
    }
    Ok(state)
}

fn sub_transitions_ok(events: &[SubscriptionEvent]) -> Result<SubscriptionState, String> {
    use SubscriptionState as S;
    let mut state = S::Unsubscribed;
    for e in events {
        let next = match e {
            SubscriptionEvent::Subscribing { .. } => S::Subscribing,
            SubscriptionEvent::Subscribed(_) => S::Subscribed,
            SubscriptionEvent::Unsubscribed { .. } => S::Unsubscribed,
            SubscriptionEvent::Lagged { .. } => return Err("subscription stream lagged".into()),
            SubscriptionEvent::Publication(_) if state != S::Subscribed => {
                return Err(format!("publication while {state:?}"));
            }
            _ => continue,
        };
        let legal = matches!(
            (state, next),
            (S::Unsubscribed, S::Subscribing)
                | (S::Subscribing, S::Subscribed | S::Unsubscribed)
                | (S::Subscribed, S::Subscribing | S::Unsubscribed)
        );
        if !legal {
            return Err(format!(
                "illegal subscription transition {state:?} -> {e:?}"
            ));
        }
        state = next;
    }
    Ok(state)
}

/// Numbers carried by the publications, with the reported recovery failures; checks the
/// no-loss/no-duplicate rule. Returns the last number seen, the number of publications and
/// the number of `recovered: false` resubscribes.
fn check_sequence(events: &[SubscriptionEvent]) -> Result<(Option<u64>, usize, usize), String> {
    let mut last: Option<u64> = None;
    let mut gap_allowed = false;
    let mut received = 0;
    let mut unrecovered = 0;
    for e in events {
        match e {
            SubscriptionEvent::Subscribed(ctx) => {
                gap_allowed = ctx.was_recovering && !ctx.recovered;
                unrecovered += usize::from(gap_allowed);
            }
            SubscriptionEvent::Publication(p) => {
                let v: serde_json::Value = serde_json::from_slice(&p.data)
                    .map_err(|e| format!("publication is not JSON: {e}"))?;
                let n = v["n"].as_u64().ok_or("publication without n")?;
                received += 1;
                let want = last.map_or(0, |l| l + 1);
                if n < want {
                    return Err(format!(
                        "duplicate or reordered publication {n} after {last:?}"
                    ));
                }
                if n > want && !gap_allowed {
                    return Err(format!(
                        "lost publications {want}..{n} without a recovered:false event"
                    ));
                }
                if p.offset != n + 1 {
                    return Err(format!("publication {n} has offset {}", p.offset));
                }
                last = Some(n);
            }
            _ => {}
        }
    }
    Ok((last, received, unrecovered))
}

// ----- the test ------------------------------------------------------------------------------

fn seed() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

fn chaos_secs() -> u64 {
    std::env::var("FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Collects a stream into a shared vector until it ends.
fn collect<T: Send + 'static>(
    mut stream: gyre_client::EventStream<T>,
) -> (Arc<Mutex<Vec<T>>>, tokio::task::JoinHandle<()>) {
    let store = Arc::new(Mutex::new(Vec::new()));
    let s = store.clone();
    let task = tokio::spawn(async move {
        while let Some(e) = stream.recv().await {
            s.lock().expect("lock").push(e);
        }
    });
    (store, task)
}

async fn run(protocol: Protocol) {
    let seed = seed();
    let secs = chaos_secs();
    eprintln!("fault injection {protocol:?}: FAULT_SEED={seed} FAULT_SECS={secs}");
    let mut config = insecure_config();
    config["client"]["recovery_max_publication_limit"] = serde_json::json!(100_000);
    config["client"]["ping_interval"] = serde_json::json!("3s");
    config["client"]["pong_timeout"] = serde_json::json!("2s");
    config["channel"]["without_namespace"]["history_size"] = serde_json::json!(100_000);
    config["channel"]["without_namespace"]["history_ttl"] = serde_json::json!("300s");
    config["channel"]["without_namespace"]["force_recovery"] = serde_json::json!(true);
    let server = Arc::new(Server::start(config));
    let (proxy_port, mode, proxy_task) = start_proxy(server.port).await;

    // The client lives on a runtime of its own so that its tasks can be counted.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let main_channel = format!("chaos-{protocol:?}");
    let side_channel = format!("side-{protocol:?}");
    let (client, main, side) = {
        let _enter = client_rt.enter();
        let client =
            ClientOptions::new(format!("ws://127.0.0.1:{proxy_port}/connection/websocket"))
                .protocol(protocol)
                .timeout(OP_TIMEOUT)
                .reconnect_delay(Duration::from_millis(50), Duration::from_millis(1000))
                .max_server_ping_delay(Duration::from_secs(1))
                .event_capacity(1 << 20)
                .seed(seed)
                .build()
                .expect("client");
        let delay = (Duration::from_millis(50), Duration::from_millis(1000));
        let main = client
            .new_subscription(
                &main_channel,
                SubscriptionOptions::new()
                    .recoverable(true)
                    .positioned(true)
                    .resubscribe_delay(delay.0, delay.1),
            )
            .expect("main subscription");
        let side = client
            .new_subscription(
                &side_channel,
                SubscriptionOptions::new().resubscribe_delay(delay.0, delay.1),
            )
            .expect("side subscription");
        (client, main, side)
    };
    let (client_events, client_collector) = collect(client.events());
    let (main_events, main_collector) = collect(main.events());
    let (side_events, side_collector) = collect(side.events());
    main.subscribe();
    side.subscribe();
    client.connect();
    bounded(
        "ready",
        OP_TIMEOUT + MARGIN,
        main.ready(Some(Duration::from_secs(5))),
    )
    .await
    .expect("subscribed before the chaos starts");

    let mut rng = StdRng::seed_from_u64(seed);
    let mut user_rng = StdRng::seed_from_u64(rng.random());
    let chaos_time = Duration::from_secs(secs);
    let user_plan = plan(&mut user_rng, chaos_time);
    let want_side = side_expected(&user_plan);
    let until = Instant::now() + chaos_time;

    // Publisher: the HTTP API, straight to the server, a numbered sequence.
    let publisher = {
        let server = server.clone();
        let ch = main_channel.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let r = server
                    .api(
                        "publish",
                        serde_json::json!({"channel": ch, "data": {"n": n}}),
                    )
                    .await;
                assert_eq!(
                    r["result"]["offset"].as_u64(),
                    Some(n + 1),
                    "publish {n}: {r}"
                );
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            n
        })
    };

    // The user: the seeded plan, with calls after each step.
    let user = {
        let (client, main, side) = (client.clone(), main.clone(), side.clone());
        let side_channel = side_channel.clone();
        let user_plan = user_plan.clone();
        tokio::spawn(async move {
            let mut side_on = true;
            let mut ok_calls = 0;
            for (pause, action) in user_plan {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                match action {
                    Action::ToggleSide => {
                        if side_on {
                            side.unsubscribe();
                        } else {
                            side.subscribe();
                        }
                        side_on = !side_on;
                    }
                    Action::BounceMain(ms) => {
                        main.unsubscribe();
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        main.subscribe();
                    }
                    Action::Reconnect(ms) => {
                        client.disconnect();
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        client.connect();
                    }
                    Action::Calls => {}
                }
                ok_calls += calls(&client, &main, &side_channel).await;
            }
            ok_calls
        })
    };

    let log = chaos(&mode, &mut rng, until).await;
    let published = publisher.await.expect("publisher");
    let ok_calls = user.await.expect("user");
    eprintln!("chaos: {}", log.join("; "));
    eprintln!(
        "published {published}, {ok_calls} successful calls, plan of {} actions, side ends {want_side:?}",
        user_plan.len()
    );

    // Healed: the client must reach the prescribed final state and catch up.
    let healed = Instant::now();
    bounded("client.ready", HEAL_TIME, async {
        loop {
            if client.ready(Some(OP_TIMEOUT)).await.is_ok()
                && main.ready(Some(OP_TIMEOUT)).await.is_ok()
            {
                return;
            }
        }
    })
    .await;
    let caught_up = loop {
        let last = check_sequence(&main_events.lock().expect("lock"))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if last.0 == published.checked_sub(1) {
            break true;
        }
        if healed.elapsed() > HEAL_TIME {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Let the side subscription settle as well.
    if want_side == SubscriptionState::Subscribed {
        bounded("side.ready", HEAL_TIME, async {
            while side.ready(Some(OP_TIMEOUT)).await.is_err() {}
        })
        .await;
    } else {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.state(), State::Connected, "seed {seed}");
    assert_eq!(main.state(), SubscriptionState::Subscribed, "seed {seed}");
    assert_eq!(side.state(), want_side, "seed {seed}: side subscription");
    // All calls work again once healed.
    assert_eq!(calls(&client, &main, &side_channel).await, 6, "seed {seed}");
    let top = bounded(
        "history",
        OP_TIMEOUT + MARGIN,
        main.history(HistoryOptions::default()),
    )
    .await
    .expect("history after healing");
    assert_eq!(top.offset, published, "seed {seed}: stream top");

    // The metric sees the client's task (so the check after close can fail).
    let metrics = client_rt.metrics();
    assert!(metrics.num_alive_tasks() >= 1, "client task not visible");

    // Close: everything stops.
    bounded("close", OP_TIMEOUT + MARGIN, client.close()).await;
    assert_eq!(client.state(), State::Closed);
    assert_eq!(main.state(), SubscriptionState::Unsubscribed);
    assert_eq!(side.state(), SubscriptionState::Unsubscribed);
    assert_eq!(
        bounded("rpc after close", MARGIN, client.rpc("m", &b"{}"[..])).await,
        Err(Error::Closed)
    );
    // Drop guards: every event stream ends because the task dropped its senders...
    for (name, task) in [
        ("client events", client_collector),
        ("main events", main_collector),
        ("side events", side_collector),
    ] {
        bounded(name, MARGIN, task).await.expect("collector");
    }
    // ...and the client runtime has no task left.
    let deadline = Instant::now() + MARGIN;
    while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        0,
        "seed {seed}: client tasks still alive after close()"
    );

    let client_events = std::mem::take(&mut *client_events.lock().expect("lock"));
    let main_events = std::mem::take(&mut *main_events.lock().expect("lock"));
    let side_events = std::mem::take(&mut *side_events.lock().expect("lock"));
    let fin = client_transitions_ok(&client_events).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(fin, State::Closed);
    assert_eq!(client_events.last(), Some(&ClientEvent::Closed));
    let fin = sub_transitions_ok(&main_events).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(fin, SubscriptionState::Unsubscribed);
    assert!(
        matches!(
            main_events.last(),
            Some(SubscriptionEvent::Unsubscribed { code: 2, .. })
        ),
        "{:?}",
        main_events.last()
    );
    let fin = sub_transitions_ok(&side_events).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(fin, SubscriptionState::Unsubscribed);
    let (last, received, unrecovered) =
        check_sequence(&main_events).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    eprintln!("received {received} publications, {unrecovered} unrecovered resubscribes");
    if !caught_up {
        // Only acceptable when the very last resubscribe could not recover.
        let last_subscribed = main_events.iter().rev().find_map(|e| match e {
            SubscriptionEvent::Subscribed(ctx) => Some(ctx.clone()),
            _ => None,
        });
        assert!(
            unrecovered > 0 && last_subscribed.is_some_and(|c| c.was_recovering && !c.recovered),
            "seed {seed}: stopped at {last:?} of {published} publications"
        );
    }
    let reconnects = client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Connected(_)))
        .count();
    eprintln!("{protocol:?}: {reconnects} connects; seed {seed} passed");
    assert!(reconnects > 1, "the chaos never broke a connection");

    proxy_task.abort();
    drop(mode);
    client_rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_json() {
    run(Protocol::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_protobuf() {
    run(Protocol::Protobuf).await;
}
