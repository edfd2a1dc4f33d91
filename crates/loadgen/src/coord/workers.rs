//! The worker processes as the coordinator sees them (commands on stdin, answers on stdout)
//! and the state of one run: its settings, its workers and its progress phase.

use std::cell::{Cell, RefCell};
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{RunArgs, Scenario, Via};
use crate::publish::{NatsMode, Publisher};
use crate::stats::{Hist, sample};

/// A worker process and its pipes.
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

/// The histogram under `key` in a worker's answer (empty when missing).
pub(super) fn hist_of(v: &Value, key: &str) -> Hist {
    let pairs: Vec<(u64, u64)> = v
        .get(key)
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    Hist::from_pairs(&pairs)
}

/// One run: its settings, its workers, the phase the progress line shows and the peak server
/// RSS the progress task saw.
pub(super) struct Ctx {
    pub(super) args: RunArgs,
    workers: Vec<Worker>,
    pub(super) phase: Rc<RefCell<String>>,
    pub(super) peak_rss: Rc<Cell<u64>>,
}

impl Ctx {
    /// A run with no worker yet.
    pub(super) fn new(args: RunArgs, phase: Rc<RefCell<String>>, peak_rss: Rc<Cell<u64>>) -> Self {
        Self {
            args,
            workers: Vec::new(),
            phase,
            peak_rss,
        }
    }

    fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    /// CPU seconds of the coordinator and its workers so far.
    pub(super) fn loadgen_cpu(&self) -> f64 {
        let own = sample(std::process::id()).cpu_s;
        own + self
            .worker_pids()
            .iter()
            .map(|p| sample(*p).cpu_s)
            .sum::<f64>()
    }

    /// Sets the phase the progress line shows.
    pub(super) fn set_phase(&self, p: impl Into<String>) {
        *self.phase.borrow_mut() = p.into();
    }

    /// Starts the workers with `conns` connections in all in `mode`; returns how many
    /// connected and the time it took (ms).
    pub(super) async fn spawn_workers(&mut self, mode: &str, conns: usize) -> Result<(usize, u64)> {
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

    /// Sends `line` to every worker.
    pub(super) async fn tell_all(&mut self, line: &str) -> Result<()> {
        for w in &mut self.workers {
            w.say(line).await?;
        }
        Ok(())
    }

    /// Every worker's next answer of `kind`, in worker order.
    pub(super) async fn hear_all(&mut self, kind: &str, timeout: Duration) -> Result<Vec<Value>> {
        let mut answers = Vec::with_capacity(self.workers.len());
        for w in &mut self.workers {
            answers.push(w.expect(kind, timeout).await?);
        }
        Ok(answers)
    }

    /// The deliveries the workers counted in step `k` and their merged latency histogram.
    pub(super) async fn collect_step(&mut self, k: usize) -> Result<(u64, Hist)> {
        let mut received = 0;
        let mut hist = Hist::default();
        self.tell_all(&format!("report {k}")).await?;
        for v in self.hear_all("step", Duration::from_secs(30)).await? {
            received += v["received"].as_u64().unwrap_or(0);
            hist.merge(&hist_of(&v, "hist"));
        }
        Ok((received, hist))
    }

    /// Stops the workers; returns their final reports.
    pub(super) async fn stop_workers(&mut self) -> Result<Vec<Value>> {
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

    /// The publisher the settings ask for.
    pub(super) async fn publisher(&self) -> Result<Publisher> {
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
