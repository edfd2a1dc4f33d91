//! The coordinator: runs one scenario against one server. It starts worker processes (each
//! holds fewer than 20,000 sockets), publishes on a fixed schedule, merges the workers'
//! histograms, samples the server's CPU and memory from /proc, prints a progress line every
//! second and writes one JSON result file.

use std::cell::{Cell, RefCell};
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::conn::Target;
use crate::publish::{NatsMode, Publisher, nats_create_stream};
use crate::stats::{self, Hist, sample, sample_all};

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// S1: idle connections.
    Idle,
    /// S2 (and S7 with --slow-every): one channel, many subscribers, rising publish rate.
    Fanout,
    /// S3: personal plus group channel per connection, publishes to groups, churn.
    Group,
    /// S4: the publish path alone.
    Publish,
    /// S5: every client drops and recovers at once.
    Recovery,
}

/// How publishes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// HTTP POST (Gyre's server API, the floor, the Socket.IO peer).
    Http,
    /// Centrifugo client `publish` command over WebSocket.
    Client,
    /// NATS `PUB` over TCP.
    Nats,
}

/// Coordinator settings.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// System under test.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Label in the report (defaults to the target name).
    #[arg(long)]
    pub label: Option<String>,
    /// WebSocket URL of the server; several, comma-separated, when the system runs as several
    /// processes (worker `w` connects to URL `w mod count`, so use a multiple of the count).
    #[arg(long, value_delimiter = ',', required = true)]
    pub url: Vec<String>,
    /// Where publishes go: http://… for HTTP, host:port for NATS, ws://… for client publish.
    #[arg(long, default_value = "")]
    pub publish_url: String,
    /// How to publish.
    #[arg(long, value_enum, default_value = "http")]
    pub via: Via,
    /// HTTP API key.
    #[arg(long, default_value = "k")]
    pub api_key: String,
    /// Server process ids, comma-separated (CPU and memory are read from /proc and summed:
    /// several nodes and their Redis count as one system).
    #[arg(long, value_delimiter = ',', required = true)]
    pub server_pid: Vec<u32>,
    /// Result file.
    #[arg(long)]
    pub out: String,
    /// Connections (subscribers) in all.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Worker processes to spread the connections over.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Publish rates per step (publishes per second), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 4.0)]
    pub step_secs: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Protobuf instead of JSON (Centrifugo protocol).
    #[arg(long)]
    pub protobuf: bool,
    /// Every Nth subscriber stops reading (S7; 0: none).
    #[arg(long, default_value_t = 0)]
    pub slow_every: usize,
    /// Channel.
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Seconds to hold idle connections (S1).
    #[arg(long, default_value_t = 20.0)]
    pub hold_secs: f64,
    /// Group size (S3).
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Churn in percent of connections per minute (S3).
    #[arg(long, default_value_t = 20.0)]
    pub churn: f64,
    /// Publications missed while disconnected (S5).
    #[arg(long, default_value_t = 10)]
    pub missed: u64,
    /// Stop raising the rate once p99 exceeds this (ms) or loss exceeds 1%.
    #[arg(long, default_value_t = 200.0)]
    pub p99_limit_ms: f64,
    /// HTTP connections for the publisher.
    #[arg(long, default_value_t = 2)]
    pub publish_conns: usize,
    /// NATS: publish into a JetStream stream on the channel (created by the load generator),
    /// each publish a request answered by a PubAck. The other systems choose history on the
    /// server side (Gyre's namespaces, the floor's `--history`, Socket.IO's recovery store).
    #[arg(long)]
    pub history: bool,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn say(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn expect(&mut self, kind: &str, timeout: Duration) -> Result<Value> {
        let end = Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(end.into(), self.lines.next_line())
                .await
                .with_context(|| format!("worker did not answer '{kind}' in time"))??
                .with_context(|| format!("worker exited before '{kind}'"))?;
            if let Some(rest) = line.strip_prefix(kind)
                && let Some(json) = rest.strip_prefix(' ')
            {
                return Ok(serde_json::from_str(json)?);
            }
        }
    }
}

fn hist_of(v: &Value, key: &str) -> Hist {
    let pairs: Vec<(u64, u64)> = v
        .get(key)
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    Hist::from_pairs(&pairs)
}

struct Ctx {
    args: RunArgs,
    workers: Vec<Worker>,
    phase: Rc<RefCell<String>>,
    peak_rss: Rc<Cell<u64>>,
}

impl Ctx {
    fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    fn loadgen_cpu(&self) -> f64 {
        let own = sample(std::process::id()).cpu_s;
        own + self
            .worker_pids()
            .iter()
            .map(|p| sample(*p).cpu_s)
            .sum::<f64>()
    }

    fn set_phase(&self, p: impl Into<String>) {
        *self.phase.borrow_mut() = p.into();
    }

    async fn spawn_workers(&mut self, mode: &str, conns: usize) -> Result<(usize, u64)> {
        let exe = std::env::current_exe()?;
        let a = &self.args;
        let n = a.workers.max(1).min(conns.max(1));
        let t0 = Instant::now();
        let mut first = 0;
        for w in 0..n {
            let share = conns / n + usize::from(w < conns % n);
            let mut cmd = Command::new(&exe);
            cmd.arg("worker")
                .args(["--target", a.target.name()])
                .args(["--url", &a.url[w % a.url.len()]])
                .args(["--conns", &share.to_string()])
                .args(["--first", &first.to_string()])
                .args(["--mode", mode])
                .args(["--channel", &a.channel])
                .args(["--slow-every", &a.slow_every.to_string()])
                .args(["--group-size", &a.group_size.to_string()])
                .args(["--churn-pct-per-min", &a.churn.to_string()]);
            if a.protobuf {
                cmd.arg("--protobuf");
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn()?;
            let stdin = child.stdin.take().context("stdin")?;
            let stdout = child.stdout.take().context("stdout")?;
            self.workers.push(Worker {
                child,
                stdin,
                lines: BufReader::new(stdout).lines(),
            });
            first += share;
        }
        self.set_phase(format!("connecting {conns}"));
        let mut connected = 0;
        for w in &mut self.workers {
            let v = w.expect("ready", Duration::from_secs(150)).await?;
            connected += v["connected"].as_u64().unwrap_or(0) as usize;
        }
        Ok((connected, t0.elapsed().as_millis() as u64))
    }

    async fn collect_step(&mut self, k: usize) -> Result<(u64, Hist)> {
        let mut received = 0;
        let mut hist = Hist::default();
        for w in &mut self.workers {
            w.say(&format!("report {k}")).await?;
        }
        for w in &mut self.workers {
            let v = w.expect("step", Duration::from_secs(30)).await?;
            received += v["received"].as_u64().unwrap_or(0);
            hist.merge(&hist_of(&v, "hist"));
        }
        Ok((received, hist))
    }

    async fn stop_workers(&mut self) -> Result<Vec<Value>> {
        let mut finals = Vec::new();
        for w in &mut self.workers {
            let _ = w.say("stop").await;
        }
        for w in &mut self.workers {
            if let Ok(v) = w.expect("final", Duration::from_secs(20)).await {
                finals.push(v);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await;
        }
        Ok(finals)
    }

    async fn publisher(&self) -> Result<Publisher> {
        let a = &self.args;
        match a.via {
            Via::Http => Publisher::http(&a.publish_url, &a.api_key, a.publish_conns).await,
            Via::Nats => {
                let mode = if a.history {
                    NatsMode::JetStream
                } else if a.scenario == Scenario::Publish {
                    NatsMode::Verbose
                } else {
                    NatsMode::Fire
                };
                Publisher::nats(&a.publish_url, mode).await
            }
            Via::Client => {
                let url = if a.publish_url.starts_with("ws") {
                    &a.publish_url
                } else {
                    a.url.first().context("no url")?
                };
                let protocol = if a.protobuf {
                    gyre_protocol::Protocol::Protobuf
                } else {
                    gyre_protocol::Protocol::Json
                };
                Publisher::client(a.target, url, protocol).await
            }
        }
    }
}

/// Measures one step: publishes at `rate` then waits for the tail; returns its JSON.
#[allow(clippy::too_many_arguments)]
async fn step(
    ctx: &mut Ctx,
    publisher: &mut Publisher,
    k: usize,
    rate: f64,
    channels: &[String],
    receivers_per_publish: u64,
    seq: &mut u64,
) -> Result<Value> {
    let a = ctx.args.clone();
    let pid = a.server_pid.clone();
    let load = stats::loadavg();
    let s0 = sample_all(&pid);
    let m0 = stats::machine_busy_s();
    let l0 = ctx.loadgen_cpu();
    let t0 = Instant::now();
    ctx.set_phase(format!("step {k} rate {rate}/s"));
    let pstats = publisher.stats();
    if let Some(p) = &pstats {
        let mut p = p.borrow_mut();
        p.hist = Hist::default();
        p.ok = 0;
        p.errors = 0;
    }
    let phase = ctx.phase.clone();
    let published = publisher
        .run(
            rate,
            a.step_secs,
            channels,
            k as u32,
            a.size,
            seq,
            &mut |n| {
                *phase.borrow_mut() = format!("step {k} rate {rate}/s published {n}");
            },
        )
        .await?;
    let publish_secs = t0.elapsed().as_secs_f64();
    publisher.drain(Duration::from_secs(2)).await;
    if receivers_per_publish > 0 {
        // The deliveries' tail (a delivery later than this counts as lost).
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let window = t0.elapsed().as_secs_f64();
    let s1 = sample_all(&pid);
    let m1 = stats::machine_busy_s();
    let l1 = ctx.loadgen_cpu();
    let (received, hist) = ctx.collect_step(k).await?;
    let server_cpu = s1.cpu_s - s0.cpu_s;
    let loadgen_cpu = l1 - l0;
    let expected = published * receivers_per_publish;
    let s = hist.summary();
    let mut v = json!({
        "k": k, "rate": rate, "published": published, "publish_secs": publish_secs,
        "expected": expected, "received": received,
        "loss_pct": if expected > 0 { 100.0 * (expected as f64 - received as f64).max(0.0) / expected as f64 } else { 0.0 },
        "deliveries_per_s": received as f64 / a.step_secs,
        "latency_us": s,
        "server_cpu_s": server_cpu, "server_cpu_pct": 100.0 * server_cpu / window,
        "server_cpu_s_per_m": if received > 0 { server_cpu / received as f64 * 1e6 } else { 0.0 },
        "deliveries_per_cpu_s": if server_cpu > 0.0 { received as f64 / server_cpu } else { 0.0 },
        "server_write_calls": s1.write_calls.saturating_sub(s0.write_calls),
        "deliveries_per_write": if s1.write_calls > s0.write_calls { received as f64 / (s1.write_calls - s0.write_calls) as f64 } else { 0.0 },
        "loadgen_cpu_pct": 100.0 * loadgen_cpu / window,
        "other_cpu_pct": 100.0 * ((m1 - m0) - server_cpu - loadgen_cpu).max(0.0) / window,
        "server_rss_kb": s1.rss_kb, "loadavg": load, "window_s": window,
    });
    if let Some(p) = &pstats {
        let p = p.borrow();
        v["publish_latency_us"] = json!(p.hist.summary());
        v["publish_ok"] = json!(p.ok);
        v["publish_errors"] = json!(p.errors);
        v["server_cpu_us_per_publish"] = json!(if published > 0 {
            server_cpu / published as f64 * 1e6
        } else {
            0.0
        });
    }
    eprintln!(
        "  step {k}: rate {rate}/s published {published} received {received}/{expected} p50 {:.1} ms p99 {:.1} ms server cpu {:.0}%",
        s.p50 as f64 / 1e3,
        s.p99 as f64 / 1e3,
        100.0 * server_cpu / window
    );
    Ok(v)
}

fn over_limit(v: &Value, limit_ms: f64) -> bool {
    let p99 = v["latency_us"]["p99"].as_u64().unwrap_or(0) as f64 / 1e3;
    let api_p99 = v["publish_latency_us"]["p99"].as_u64().unwrap_or(0) as f64 / 1e3;
    p99 > limit_ms
        || api_p99 > limit_ms
        || v["loss_pct"].as_f64().unwrap_or(0.0) > 1.0
        || v["publish_errors"].as_u64().unwrap_or(0) > 0
}

/// Runs a scenario and writes its result file.
pub async fn run(args: RunArgs) -> Result<()> {
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| args.target.name().to_owned());
    let phase = Rc::new(RefCell::new(String::from("starting")));
    let peak_rss = Rc::new(Cell::new(0u64));
    let mut ctx = Ctx {
        args: args.clone(),
        workers: Vec::new(),
        phase: phase.clone(),
        peak_rss: peak_rss.clone(),
    };
    // Progress line, once a second.
    let pid = args.server_pid.clone();
    let tag = format!("{:?}/{label}", args.scenario).to_lowercase();
    let progress_pids = pid.clone();
    let progress = tokio::task::spawn_local(async move {
        let pid = progress_pids;
        let mut last = sample_all(&pid);
        let mut t = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = sample_all(&pid);
            let dt = t.elapsed().as_secs_f64();
            t = Instant::now();
            peak_rss.set(peak_rss.get().max(s.rss_kb));
            eprintln!(
                "[{tag}] {} | server cpu {:.0}% rss {:.1} MB | load {}",
                phase.borrow(),
                100.0 * (s.cpu_s - last.cpu_s) / dt,
                s.rss_kb as f64 / 1024.0,
                stats::loadavg()
            );
            last = s;
        }
    });
    let started = stats::unix_us();
    let load_start = stats::loadavg();
    let base = sample_all(&args.server_pid);
    if base.rss_kb == 0 {
        bail!("server pid {:?} not found", args.server_pid);
    }
    if args.target == Target::Nats && (args.history || args.scenario == Scenario::Recovery) {
        nats_create_stream(&args.publish_url, &args.channel).await?;
    }
    let mut extra = json!({});
    let mut steps = Vec::new();
    match args.scenario {
        Scenario::Idle => {
            let tcp0 = stats::tcp_mem_kb();
            let (connected, connect_ms) = ctx.spawn_workers("idle", args.conns).await?;
            ctx.set_phase(format!("holding {connected} idle"));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let load = stats::loadavg();
            let s0 = sample_all(&pid);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
            let s1 = sample_all(&pid);
            let hold = t0.elapsed().as_secs_f64();
            let tcp1 = stats::tcp_mem_kb();
            let n = connected.max(1) as f64;
            extra = json!({
                "connected": connected, "connect_ms": connect_ms,
                "connects_per_s": connected as f64 / (connect_ms.max(1) as f64 / 1e3),
                "rss_base_kb": base.rss_kb, "rss_kb": s1.rss_kb,
                "rss_kb_per_conn": (s1.rss_kb as f64 - base.rss_kb as f64) / n,
                "cpu_us_per_s_per_conn": (s1.cpu_s - s0.cpu_s) / hold / n * 1e6,
                "cpu_pct": 100.0 * (s1.cpu_s - s0.cpu_s) / hold,
                "hold_s": hold, "loadavg": load,
                "kernel_tcp_kb_per_conn_both_ends": (tcp1 as f64 - tcp0 as f64) / n,
            });
            eprintln!("  idle: {extra}");
        }
        Scenario::Fanout | Scenario::Publish => {
            let (connected, connect_ms) = if args.scenario == Scenario::Fanout {
                ctx.spawn_workers("sub", args.conns).await?
            } else {
                (0, 0)
            };
            let slow = if args.slow_every > 0 {
                connected.div_ceil(args.slow_every)
            } else {
                0
            };
            extra = json!({"connected": connected, "connect_ms": connect_ms, "slow": slow});
            let mut publisher = ctx.publisher().await?;
            let mut seq = 0;
            let channels = vec![args.channel.clone()];
            for (k, rate) in args.rates.iter().enumerate() {
                let v = step(
                    &mut ctx,
                    &mut publisher,
                    k,
                    *rate,
                    &channels,
                    (connected - slow) as u64,
                    &mut seq,
                )
                .await?;
                let stop = over_limit(&v, args.p99_limit_ms);
                steps.push(v);
                if stop {
                    break;
                }
            }
        }
        Scenario::Group => {
            let (connected, connect_ms) = ctx.spawn_workers("group", args.conns).await?;
            let groups = args.conns.div_ceil(args.group_size.max(1));
            extra = json!({"connected": connected, "connect_ms": connect_ms, "groups": groups});
            let channels: Vec<String> = (0..groups).map(|g| format!("g_{g}")).collect();
            let mut publisher = ctx.publisher().await?;
            let mut seq = 0;
            for (k, rate) in args.rates.iter().enumerate() {
                let v = step(
                    &mut ctx,
                    &mut publisher,
                    k,
                    *rate,
                    &channels,
                    args.group_size as u64,
                    &mut seq,
                )
                .await?;
                let stop = over_limit(&v, args.p99_limit_ms);
                steps.push(v);
                if stop {
                    break;
                }
            }
        }
        Scenario::Recovery => {
            let (connected, connect_ms) = ctx.spawn_workers("recover", args.conns).await?;
            let mut publisher = ctx.publisher().await?;
            let mut seq = 0;
            let channels = vec![args.channel.clone()];
            // Warm-up publications: every client learns its position. Wait (up to 20 s) until
            // every client has them all, so that the drop leaves exactly the publications made
            // while disconnected to recover, for every system.
            let warm = publisher
                .run(20.0, 0.25, &channels, 0, args.size, &mut seq, &mut |_| {})
                .await?;
            ctx.set_phase("warm-up deliveries");
            let t_warm = Instant::now();
            let mut warm_received = 0;
            while t_warm.elapsed() < Duration::from_secs(20) {
                warm_received = 0;
                for w in &mut ctx.workers {
                    w.say("received 0").await?;
                }
                for w in &mut ctx.workers {
                    let v = w.expect("received", Duration::from_secs(10)).await?;
                    warm_received += v["received"].as_u64().unwrap_or(0);
                }
                if warm_received >= warm * connected as u64 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let warm_wait_ms = t_warm.elapsed().as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(300)).await;
            ctx.set_phase("dropping all");
            for w in &mut ctx.workers {
                w.say("drop").await?;
            }
            for w in &mut ctx.workers {
                w.expect("dropped", Duration::from_secs(30)).await?;
            }
            ctx.set_phase("publishing while disconnected");
            let missed = publisher
                .run(
                    100.0,
                    args.missed as f64 / 100.0,
                    &channels,
                    1,
                    args.size,
                    &mut seq,
                    &mut |_| {},
                )
                .await?;
            publisher.drain(Duration::from_secs(2)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            ctx.set_phase("reconnect storm");
            let load = stats::loadavg();
            let s0 = sample_all(&pid);
            let t0 = Instant::now();
            for w in &mut ctx.workers {
                w.say(&format!("reconnect {missed}")).await?;
            }
            let (mut ok, mut failed, mut pubs, mut all_ms) = (0, 0, 0, 0);
            let mut hist = Hist::default();
            for w in &mut ctx.workers {
                let v = w.expect("recovered", Duration::from_secs(90)).await?;
                ok += v["ok"].as_u64().unwrap_or(0);
                failed += v["failed"].as_u64().unwrap_or(0);
                pubs += v["pubs"].as_u64().unwrap_or(0);
                all_ms = all_ms.max(v["all_ms"].as_u64().unwrap_or(0));
                hist.merge(&hist_of(&v, "hist"));
            }
            let storm_s = t0.elapsed().as_secs_f64();
            let s1 = sample_all(&pid);
            extra = json!({
                "connected": connected, "connect_ms": connect_ms, "missed": missed,
                "warmup": warm, "warmup_received": warm_received, "warmup_wait_ms": warm_wait_ms,
                "recovered_ok": ok, "recovered_failed": failed,
                "recovered_pubs": pubs, "expected_pubs": missed * connected as u64,
                "time_to_all_ms": all_ms, "recover_latency_us": hist.summary(),
                "server_cpu_s": s1.cpu_s - s0.cpu_s, "storm_s": storm_s, "loadavg": load,
                "server_rss_kb": s1.rss_kb,
            });
            eprintln!("  recovery: {extra}");
        }
    }
    ctx.set_phase("stopping");
    let finals = ctx.stop_workers().await?;
    let mut churn = Hist::default();
    let (mut churns, mut slow_closed, mut unexpected) = (0, 0, 0);
    for f in &finals {
        churn.merge(&hist_of(f, "churn_hist"));
        churns += f["churns"].as_u64().unwrap_or(0);
        slow_closed += f["slow_closed"].as_u64().unwrap_or(0);
        unexpected += f["unexpected_closes"].as_u64().unwrap_or(0);
    }
    extra["churns"] = json!(churns);
    extra["churn_latency_us"] = json!(churn.summary());
    extra["slow_closed"] = json!(slow_closed);
    extra["unexpected_closes"] = json!(unexpected);
    extra["peak_rss_kb"] = json!(ctx.peak_rss.get().max(sample_all(&pid).rss_kb));
    extra["base_rss_kb"] = json!(base.rss_kb);
    progress.abort();
    let result = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "target": args.target.name(),
        "label": label,
        "protocol": if args.protobuf { "protobuf" } else { "json" },
        "via": format!("{:?}", args.via).to_lowercase(),
        "params": {
            "conns": args.conns, "workers": args.workers, "server_processes": args.url.len(), "rates": args.rates,
            "step_secs": args.step_secs, "size": args.size, "slow_every": args.slow_every,
            "channel": args.channel, "hold_secs": args.hold_secs, "group_size": args.group_size,
            "churn_pct_per_min": args.churn, "missed": args.missed, "history": args.history,
        },
        "started_unix_us": started,
        "loadavg_start": load_start,
        "steps": steps,
        "extra": extra,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    Ok(())
}
