//! One step of a rate ladder (publish at a rate, wait for the tail, collect the workers'
//! histograms, sample the server) and the ladder itself.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::workers::Ctx;
use crate::publish::Publisher;
use crate::stats::{self, Hist, sample_all};

/// A rate ladder's publisher and what it publishes to.
struct Lane<'a> {
    publisher: Publisher,
    channels: &'a [String],
    /// Deliveries each publication should make (0: no subscribers, no tail to wait for).
    receivers_per_publish: u64,
    /// The sequence number of the next payload.
    seq: u64,
}

/// Runs the ladder of the run's rates, one step per rate, and stops after the first step over
/// the p99 limit (or with loss or errors); returns the steps' JSON.
pub(super) async fn ladder(
    ctx: &mut Ctx,
    channels: &[String],
    receivers_per_publish: u64,
) -> Result<Vec<Value>> {
    let mut lane = Lane {
        publisher: ctx.publisher().await?,
        channels,
        receivers_per_publish,
        seq: 0,
    };
    let rates = ctx.args.rates.clone();
    let mut steps = Vec::new();
    for (k, rate) in rates.iter().enumerate() {
        let v = step(ctx, &mut lane, k, *rate).await?;
        let stop = over_limit(&v, ctx.args.p99_limit_ms);
        steps.push(v);
        if stop {
            break;
        }
    }
    Ok(steps)
}

/// Measures one step: publishes at `rate` then waits for the tail; returns its JSON.
async fn step(ctx: &mut Ctx, lane: &mut Lane<'_>, k: usize, rate: f64) -> Result<Value> {
    let a = ctx.args.clone();
    let pid = a.server_pid.clone();
    let load = stats::loadavg();
    let s0 = sample_all(&pid);
    let m0 = stats::machine_busy_s();
    let l0 = ctx.loadgen_cpu();
    let t0 = Instant::now();
    ctx.set_phase(format!("step {k} rate {rate}/s"));
    let pstats = lane.publisher.stats();
    if let Some(p) = &pstats {
        let mut p = p.borrow_mut();
        p.hist = Hist::default();
        p.ok = 0;
        p.errors = 0;
    }
    let phase = ctx.phase.clone();
    let published = lane
        .publisher
        .run(
            rate,
            a.step_secs,
            lane.channels,
            k as u32,
            a.size,
            &mut lane.seq,
            &mut |n| {
                *phase.borrow_mut() = format!("step {k} rate {rate}/s published {n}");
            },
        )
        .await?;
    let publish_secs = t0.elapsed().as_secs_f64();
    lane.publisher.drain(Duration::from_secs(2)).await;
    if lane.receivers_per_publish > 0 {
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
    let expected = published * lane.receivers_per_publish;
    let s = hist.summary();
    let mut v = json!({
        "k": k, "rate": rate, "published": published, "publish_secs": publish_secs,
        "expected": expected, "received": received,
        "loss_pct": if expected > 0 { 100.0 * (expected as f64 - received as f64).max(0.0) / expected as f64 } else { 0.0 },
        "deliveries_per_s": received as f64 / a.step_secs,
        "latency_us": s,
        "server_cpu_s": server_cpu, "server_cpu_pct": 100.0 * server_cpu / window,
        "server_cpu_s_per_m": if received > 0 { server_cpu / received as f64 * 1e6 } else { 0.0 },
        "server_user_s": s1.user_s - s0.user_s, "server_sys_s": s1.sys_s - s0.sys_s,
        "server_user_s_per_m": if received > 0 { (s1.user_s - s0.user_s) / received as f64 * 1e6 } else { 0.0 },
        "server_sys_s_per_m": if received > 0 { (s1.sys_s - s0.sys_s) / received as f64 * 1e6 } else { 0.0 },
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
