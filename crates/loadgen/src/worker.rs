//! A load-generator worker process: holds up to ~19k client connections, records the latency
//! of every payload it receives into one histogram per step, and talks to its coordinator over
//! stdin (commands) and stdout (one JSON line per answer).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use gyre_protocol::Protocol;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore, watch};

use crate::conn::{Conn, Event, Sub, Target};
use crate::stats::{Hist, unix_us};

/// What the worker's connections do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Connect and hold, answering pings (S1).
    Idle,
    /// Subscribe to one channel and record every payload (S2, S7).
    Sub,
    /// Personal plus group channel per connection, with churn (S3).
    Group,
    /// Subscribe with recovery; drop and reconnect on command (S5).
    Recover,
}

/// Worker settings (from the command line).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WorkerArgs {
    /// System under test.
    #[arg(long, value_enum)]
    pub target: Target,
    /// WebSocket URL.
    #[arg(long)]
    pub url: String,
    /// Use Protobuf instead of JSON (Centrifugo protocol).
    #[arg(long)]
    pub protobuf: bool,
    /// Connections to hold.
    #[arg(long)]
    pub conns: usize,
    /// Global index of the first connection (names personal channels).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Behaviour.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Channel (sub and recover modes).
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Every Nth connection stops reading after subscribing (0: none).
    #[arg(long, default_value_t = 0)]
    pub slow_every: usize,
    /// Group size (group mode).
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Connections reconnected per minute, in percent of all (group mode).
    #[arg(long, default_value_t = 0.0)]
    pub churn_pct_per_min: f64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

#[derive(Debug, Default)]
struct Step {
    received: u64,
    hist: Hist,
}

#[derive(Debug, Default)]
struct State {
    steps: Vec<Step>,
    connected: usize,
    failed: usize,
    unexpected_closes: u64,
    slow_closed: u64,
    churns: u64,
    churn_hist: Hist,
    recovered_ok: u64,
    recovered_failed: u64,
    recovered_pubs: u64,
    recover_hist: Hist,
}

impl State {
    fn record(&mut self, step: u32, t: u64, now: u64) {
        let i = step as usize;
        if self.steps.len() <= i {
            self.steps.resize_with(i + 1, Step::default);
        }
        let s = &mut self.steps[i];
        s.received += 1;
        s.hist.record(now.saturating_sub(t));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Run,
    Drop,
    /// Reconnect and recover: since when, and how many publications were missed.
    Reconnect(Instant, u64),
    Stop,
}

fn say(kind: &str, value: serde_json::Value) {
    println!("{kind} {value}");
}

struct Ctx {
    args: WorkerArgs,
    protocol: Protocol,
    state: RefCell<State>,
    sem: Semaphore,
    phase: watch::Receiver<Phase>,
    ready: Notify,
}

impl Ctx {
    fn subs(&self, i: usize) -> Vec<Sub> {
        let a = &self.args;
        match a.mode {
            Mode::Idle => Vec::new(),
            Mode::Sub | Mode::Recover => vec![Sub {
                channel: a.channel.clone(),
                recover: None,
                history: a.mode == Mode::Recover,
            }],
            Mode::Group => vec![
                Sub {
                    channel: format!("p_{i}"),
                    ..Sub::default()
                },
                Sub {
                    channel: format!("g_{}", i / a.group_size.max(1)),
                    ..Sub::default()
                },
            ],
        }
    }

    async fn connect(&self, subs: &[Sub]) -> Result<(Conn, Vec<gyre_protocol::SubscribeResult>)> {
        let _permit = self.sem.acquire().await?;
        let mut last = None;
        for attempt in 0..5u64 {
            match Conn::connect(self.args.target, &self.args.url, self.protocol, subs).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
    }

    fn done_connecting(&self, ok: bool) {
        let mut s = self.state.borrow_mut();
        if ok {
            s.connected += 1;
        } else {
            s.failed += 1;
        }
        if s.connected + s.failed == self.args.conns {
            self.ready.notify_one();
        }
    }
}

/// Reads until the phase changes; returns false when the connection closed by itself.
async fn read_loop(ctx: &Ctx, conn: &mut Conn, churn: Option<&Notify>) -> bool {
    let mut phase = ctx.phase.clone();
    phase.borrow_and_update();
    let mut events = Vec::new();
    loop {
        tokio::select! {
            r = conn.recv(&mut events) => {
                if !matches!(r, Ok(true)) {
                    return false;
                }
                let now = unix_us();
                let mut s = ctx.state.borrow_mut();
                for ev in events.drain(..) {
                    if let Event::Publication(f) = ev {
                        s.record(f.step, f.t, now);
                    }
                }
            }
            r = phase.changed() => {
                if r.is_err() || matches!(*phase.borrow(), Phase::Drop | Phase::Stop) {
                    return true;
                }
            }
            () = async { match churn { Some(n) => n.notified().await, None => std::future::pending().await } } => {
                return true;
            }
        }
    }
}

/// Counts a reconnect that failed outright (the first few are logged).
fn recover_failed(ctx: &Ctx, i: usize, e: &anyhow::Error) {
    let mut s = ctx.state.borrow_mut();
    if s.recovered_failed < 3 {
        eprintln!("worker: recovering {i} failed: {e:#}");
    }
    s.recovered_failed += 1;
}

/// One connection's life: connect, then read (or, for a slow subscriber, never read) until the
/// run stops, reconnecting on churn and recovering after a drop.
async fn conn_task(ctx: Rc<Ctx>, i: usize, churn: Option<Rc<Notify>>) {
    let subs = ctx.subs(i);
    let (mut conn, _) = match ctx.connect(&subs).await {
        Ok(c) => c,
        Err(e) => {
            if ctx.state.borrow().failed < 3 {
                eprintln!("worker: connect {i} failed: {e:#}");
            }
            ctx.done_connecting(false);
            return;
        }
    };
    ctx.done_connecting(true);
    let slow = ctx.args.slow_every > 0 && i.is_multiple_of(ctx.args.slow_every);
    if slow {
        slow_until_stop(&ctx, conn).await;
        return;
    }
    loop {
        let alive = read_loop(&ctx, &mut conn, churn.as_deref()).await;
        let p = *ctx.phase.borrow();
        if !alive && p == Phase::Run {
            ctx.state.borrow_mut().unexpected_closes += 1;
            return;
        }
        let next = match p {
            Phase::Stop => {
                conn.close().await;
                return;
            }
            Phase::Run if alive => churn_reconnect(&ctx, conn, &subs).await,
            Phase::Drop | Phase::Run => drop_and_recover(&ctx, i, conn).await,
            Phase::Reconnect(..) => Some(conn),
        };
        let Some(next) = next else {
            return;
        };
        conn = next;
    }
}

/// A slow subscriber: never reads until the run stops; then sees whether the server closed it.
async fn slow_until_stop(ctx: &Ctx, mut conn: Conn) {
    let mut phase = ctx.phase.clone();
    while *phase.borrow_and_update() != Phase::Stop {
        if phase.changed().await.is_err() {
            break;
        }
    }
    let mut events = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(end.into(), conn.recv(&mut events)).await {
            Ok(Ok(true)) => events.clear(),
            Ok(_) => {
                ctx.state.borrow_mut().slow_closed += 1;
                return;
            }
            Err(_) => break,
        }
    }
    conn.close().await;
}

/// Churn: closes the connection, reconnects and resubscribes, timed; `None` when the reconnect
/// failed (counted as an unexpected close).
async fn churn_reconnect(ctx: &Ctx, conn: Conn, subs: &[Sub]) -> Option<Conn> {
    conn.close().await;
    let t0 = Instant::now();
    match ctx.connect(subs).await {
        Ok((c, _)) => {
            let mut s = ctx.state.borrow_mut();
            s.churns += 1;
            s.churn_hist.record(t0.elapsed().as_micros() as u64);
            Some(c)
        }
        Err(_) => {
            ctx.state.borrow_mut().unexpected_closes += 1;
            None
        }
    }
}

/// S5: closes the connection keeping its position, waits for the storm, reconnects with
/// recovery and counts the outcome; `None` when the run stops or the reconnect failed.
async fn drop_and_recover(ctx: &Ctx, i: usize, conn: Conn) -> Option<Conn> {
    let pos = conn.position().clone();
    conn.close().await;
    // Wait for the storm.
    let mut phase = ctx.phase.clone();
    let (start, missed) = loop {
        match *phase.borrow_and_update() {
            Phase::Reconnect(at, missed) => break (at, missed),
            Phase::Stop => return None,
            _ => {}
        }
        if phase.changed().await.is_err() {
            return None;
        }
    };
    let sub = vec![Sub {
        channel: ctx.args.channel.clone(),
        recover: Some(pos),
        history: true,
    }];
    let (mut conn, results) = match ctx.connect(&sub).await {
        Ok(c) => c,
        Err(e) => {
            recover_failed(ctx, i, &e);
            return None;
        }
    };
    match conn
        .recover(&results, missed, Duration::from_secs(30))
        .await
    {
        Ok(r) => {
            let took = start.elapsed().as_micros() as u64;
            let mut s = ctx.state.borrow_mut();
            if r.recovered {
                s.recovered_ok += 1;
            } else {
                s.recovered_failed += 1;
            }
            s.recover_hist.record(took);
            let now = unix_us();
            for f in &r.publications {
                s.recovered_pubs += 1;
                s.record(f.step, f.t, now);
            }
            Some(conn)
        }
        Err(e) => {
            recover_failed(ctx, i, &e);
            None
        }
    }
}

/// Runs a worker until its coordinator says `stop` (or closes stdin).
pub(crate) async fn run(args: WorkerArgs) -> Result<()> {
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let protocol = if args.protobuf {
        Protocol::Protobuf
    } else {
        Protocol::Json
    };
    let ctx = Rc::new(Ctx {
        sem: Semaphore::new(args.concurrency.max(1)),
        protocol,
        state: RefCell::default(),
        phase: phase_rx,
        ready: Notify::new(),
        args,
    });
    let t0 = Instant::now();
    let n = ctx.args.conns;
    let churners: Vec<Rc<Notify>> = (0..n).map(|_| Rc::new(Notify::new())).collect();
    for (i, churn) in churners.iter().enumerate() {
        let churn = (ctx.args.mode == Mode::Group).then(|| churn.clone());
        tokio::task::spawn_local(conn_task(ctx.clone(), ctx.args.first + i, churn));
    }
    if n > 0 {
        let _ = tokio::time::timeout(Duration::from_secs(120), ctx.ready.notified()).await;
    }
    {
        let s = ctx.state.borrow();
        say(
            "ready",
            json!({"connected": s.connected, "failed": s.failed, "connect_ms": t0.elapsed().as_millis() as u64}),
        );
    }
    if ctx.args.mode == Mode::Group && ctx.args.churn_pct_per_min > 0.0 && n > 0 {
        spawn_churn(&ctx.args, churners.clone());
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("report") => {
                let k: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let mut s = ctx.state.borrow_mut();
                let step = s.steps.get_mut(k).map(std::mem::take).unwrap_or_default();
                say(
                    "step",
                    json!({"k": k, "received": step.received, "hist": step.hist.to_pairs(),
                           "unexpected_closes": s.unexpected_closes}),
                );
            }
            Some("received") => {
                // Deliveries of step k so far (the step's figures are left in place).
                let k: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let s = ctx.state.borrow();
                let received = s.steps.get(k).map_or(0, |st| st.received);
                say("received", json!({"k": k, "received": received}));
            }
            Some("drop") => {
                let _ = phase_tx.send(Phase::Drop);
                tokio::time::sleep(Duration::from_millis(500)).await;
                say("dropped", json!({}));
            }
            Some("reconnect") => {
                let missed: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                reconnect_storm(&ctx, &phase_tx, missed).await;
            }
            Some("stop") | None => break,
            Some(_) => {}
        }
    }
    let _ = phase_tx.send(Phase::Stop);
    // Give the connections (and the slow ones' close check) a bounded time to finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Rc::strong_count(&ctx) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = ctx.state.borrow();
    say(
        "final",
        json!({"unexpected_closes": s.unexpected_closes, "slow_closed": s.slow_closed,
               "churns": s.churns, "churn_hist": s.churn_hist.to_pairs()}),
    );
    Ok(())
}

/// Wakes one connection's churn about every `60 / (churn% × conns)` seconds, spreading the
/// wake-ups over the connections.
fn spawn_churn(args: &WorkerArgs, churners: Vec<Rc<Notify>>) {
    let per_s = args.churn_pct_per_min / 100.0 * churners.len() as f64 / 60.0;
    let every = Duration::from_secs_f64(1.0 / per_s.max(0.01));
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        for k in 0.. {
            tick.tick().await;
            churners[(k * 7919) % churners.len()].notify_one();
        }
    });
}

/// S5: lets every dropped connection reconnect at once, waits (up to 60 s) until each has
/// recovered or failed, and answers `recovered` with the figures.
async fn reconnect_storm(ctx: &Ctx, phase_tx: &watch::Sender<Phase>, missed: u64) {
    let start = Instant::now();
    let _ = phase_tx.send(Phase::Reconnect(start, missed));
    let target = ctx.state.borrow().connected as u64;
    let end = start + Duration::from_secs(60);
    loop {
        let done = {
            let s = ctx.state.borrow();
            s.recovered_ok + s.recovered_failed
        };
        if done >= target || Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = phase_tx.send(Phase::Run);
    let s = ctx.state.borrow();
    say(
        "recovered",
        json!({"ok": s.recovered_ok, "failed": s.recovered_failed,
               "pubs": s.recovered_pubs, "all_ms": start.elapsed().as_millis() as u64,
               "hist": s.recover_hist.to_pairs()}),
    );
}
