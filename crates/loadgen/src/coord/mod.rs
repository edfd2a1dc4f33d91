//! The coordinator: runs one scenario against one server. It starts worker processes (each
//! holds fewer than 20,000 sockets), publishes on a fixed schedule, merges the workers'
//! histograms, samples the server's CPU and memory from /proc, prints a progress line every
//! second and writes one JSON result file.

mod progress;
mod scenarios;
mod step;
mod workers;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::conn::Target;
use crate::publish::nats_create_stream;
use crate::stats::{self, Hist, sample_all};
use workers::{Ctx, hist_of};

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
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
pub(crate) enum Via {
    /// HTTP POST (Gyre's server API, the floor, the Socket.IO peer).
    Http,
    /// Centrifugo client `publish` command over WebSocket.
    Client,
    /// NATS `PUB` over TCP.
    Nats,
}

/// Coordinator settings.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Scenario.
    #[arg(long, value_enum)]
    pub(crate) scenario: Scenario,
    /// System under test.
    #[arg(long, value_enum)]
    pub(crate) target: Target,
    /// Label in the report (defaults to the target name).
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// WebSocket URL of the server; several, comma-separated, when the system runs as several
    /// processes (worker `w` connects to URL `w mod count`, so use a multiple of the count).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) url: Vec<String>,
    /// Where publishes go: http://… for HTTP, host:port for NATS, ws://… for client publish.
    #[arg(long, default_value = "")]
    pub(crate) publish_url: String,
    /// How to publish.
    #[arg(long, value_enum, default_value = "http")]
    pub(crate) via: Via,
    /// HTTP API key.
    #[arg(long, default_value = "k")]
    pub(crate) api_key: String,
    /// Server process ids, comma-separated (CPU and memory are read from /proc and summed:
    /// several nodes and their Redis count as one system).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) server_pid: Vec<u32>,
    /// Result file.
    #[arg(long)]
    pub(crate) out: String,
    /// Connections (subscribers) in all.
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: usize,
    /// Worker processes to spread the connections over.
    #[arg(long, default_value_t = 2)]
    pub(crate) workers: usize,
    /// Publish rates per step (publishes per second), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub(crate) rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) step_secs: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 128)]
    pub(crate) size: usize,
    /// Protobuf instead of JSON (Centrifugo protocol).
    #[arg(long)]
    pub(crate) protobuf: bool,
    /// Every Nth subscriber stops reading (S7; 0: none).
    #[arg(long, default_value_t = 0)]
    pub(crate) slow_every: usize,
    /// Channel.
    #[arg(long, default_value = "bench")]
    pub(crate) channel: String,
    /// Seconds to hold idle connections (S1).
    #[arg(long, default_value_t = 20.0)]
    pub(crate) hold_secs: f64,
    /// Group size (S3).
    #[arg(long, default_value_t = 10)]
    pub(crate) group_size: usize,
    /// Churn in percent of connections per minute (S3).
    #[arg(long, default_value_t = 20.0)]
    pub(crate) churn: f64,
    /// Publications missed while disconnected (S5).
    #[arg(long, default_value_t = 10)]
    pub(crate) missed: u64,
    /// Stop raising the rate once p99 exceeds this (ms) or loss exceeds 1%.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) p99_limit_ms: f64,
    /// HTTP connections for the publisher.
    #[arg(long, default_value_t = 2)]
    pub(crate) publish_conns: usize,
    /// NATS: publish into a JetStream stream on the channel (created by the load generator),
    /// each publish a request answered by a PubAck. The other systems choose history on the
    /// server side (Gyre's namespaces, the floor's `--history`, Socket.IO's recovery store).
    #[arg(long)]
    pub(crate) history: bool,
}

/// Runs a scenario and writes its result file.
pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| args.target.name().to_owned());
    let phase = Rc::new(RefCell::new(String::from("starting")));
    let peak_rss = Rc::new(Cell::new(0u64));
    let mut ctx = Ctx::new(args.clone(), phase.clone(), peak_rss.clone());
    let tag = format!("{:?}/{label}", args.scenario).to_lowercase();
    let progress = progress::spawn(args.server_pid.clone(), tag, phase, peak_rss);
    let started = stats::unix_us();
    let load_start = stats::loadavg();
    let base = sample_all(&args.server_pid);
    if base.rss_kb == 0 {
        bail!("server pid {:?} not found", args.server_pid);
    }
    if args.target == Target::Nats && (args.history || args.scenario == Scenario::Recovery) {
        nats_create_stream(&args.publish_url, &args.channel).await?;
    }
    let (mut extra, steps) = match args.scenario {
        Scenario::Idle => (scenarios::idle(&mut ctx, base.rss_kb).await?, Vec::new()),
        Scenario::Fanout => scenarios::fanout(&mut ctx, true).await?,
        Scenario::Publish => scenarios::fanout(&mut ctx, false).await?,
        Scenario::Group => scenarios::group(&mut ctx).await?,
        Scenario::Recovery => (scenarios::recovery(&mut ctx).await?, Vec::new()),
    };
    ctx.set_phase("stopping");
    let finals = ctx.stop_workers().await?;
    add_final_figures(&mut extra, &finals);
    extra["peak_rss_kb"] = json!(ctx.peak_rss.get().max(sample_all(&args.server_pid).rss_kb));
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

/// Adds the figures of the workers' final reports (churn, slow clients closed, unexpected
/// closes), summed over the workers, to the scenario's figures.
fn add_final_figures(extra: &mut Value, finals: &[Value]) {
    let mut churn = Hist::default();
    let (mut churns, mut slow_closed, mut unexpected) = (0, 0, 0);
    for f in finals {
        churn.merge(&hist_of(f, "churn_hist"));
        churns += f["churns"].as_u64().unwrap_or(0);
        slow_closed += f["slow_closed"].as_u64().unwrap_or(0);
        unexpected += f["unexpected_closes"].as_u64().unwrap_or(0);
    }
    extra["churns"] = json!(churns);
    extra["churn_latency_us"] = json!(churn.summary());
    extra["slow_closed"] = json!(slow_closed);
    extra["unexpected_closes"] = json!(unexpected);
}
