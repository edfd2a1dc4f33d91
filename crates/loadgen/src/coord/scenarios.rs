//! The scenarios: what happens between starting the workers and stopping them. Each returns the
//! scenario's figures (`extra` in the result file) and, for the rate ladders, their steps.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::step::ladder;
use super::workers::{Ctx, hist_of};
use crate::stats::{self, Hist, sample_all};

/// S1: connect, settle for 2 s, then hold the idle connections while sampling the server.
pub(super) async fn idle(ctx: &mut Ctx, base_rss_kb: u64) -> Result<Value> {
    let pid = ctx.args.server_pid.clone();
    let tcp0 = stats::tcp_mem_kb();
    let (connected, connect_ms) = ctx.spawn_workers("idle", ctx.args.conns).await?;
    ctx.set_phase(format!("holding {connected} idle"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let load = stats::loadavg();
    let s0 = sample_all(&pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(ctx.args.hold_secs)).await;
    let s1 = sample_all(&pid);
    let hold = t0.elapsed().as_secs_f64();
    let tcp1 = stats::tcp_mem_kb();
    let n = connected.max(1) as f64;
    let extra = json!({
        "connected": connected, "connect_ms": connect_ms,
        "connects_per_s": connected as f64 / (connect_ms.max(1) as f64 / 1e3),
        "rss_base_kb": base_rss_kb, "rss_kb": s1.rss_kb,
        "rss_kb_per_conn": (s1.rss_kb as f64 - base_rss_kb as f64) / n,
        "cpu_us_per_s_per_conn": (s1.cpu_s - s0.cpu_s) / hold / n * 1e6,
        "cpu_pct": 100.0 * (s1.cpu_s - s0.cpu_s) / hold,
        "user_pct": 100.0 * (s1.user_s - s0.user_s) / hold,
        "sys_pct": 100.0 * (s1.sys_s - s0.sys_s) / hold,
        "hold_s": hold, "loadavg": load,
        "kernel_tcp_kb_per_conn_both_ends": (tcp1 as f64 - tcp0 as f64) / n,
    });
    eprintln!("  idle: {extra}");
    Ok(extra)
}

/// S2 and S7 (subscribers on one channel, some of them slow) and S4 (no subscribers): the rate
/// ladder on the run's channel.
pub(super) async fn fanout(ctx: &mut Ctx, subscribers: bool) -> Result<(Value, Vec<Value>)> {
    let (connected, connect_ms) = if subscribers {
        ctx.spawn_workers("sub", ctx.args.conns).await?
    } else {
        (0, 0)
    };
    let slow = if ctx.args.slow_every > 0 {
        connected.div_ceil(ctx.args.slow_every)
    } else {
        0
    };
    let extra = json!({"connected": connected, "connect_ms": connect_ms, "slow": slow});
    let channels = vec![ctx.args.channel.clone()];
    let steps = ladder(ctx, &channels, (connected - slow) as u64).await?;
    Ok((extra, steps))
}

/// S3: a personal and a group channel per connection, the ladder publishing round-robin to the
/// group channels.
pub(super) async fn group(ctx: &mut Ctx) -> Result<(Value, Vec<Value>)> {
    let (connected, connect_ms) = ctx.spawn_workers("group", ctx.args.conns).await?;
    let groups = ctx.args.conns.div_ceil(ctx.args.group_size.max(1));
    let extra = json!({"connected": connected, "connect_ms": connect_ms, "groups": groups});
    let channels: Vec<String> = (0..groups).map(|g| format!("g_{g}")).collect();
    let steps = ladder(ctx, &channels, ctx.args.group_size as u64).await?;
    Ok((extra, steps))
}

/// The figures of the S5 reconnect storm, summed over the workers.
#[derive(Default)]
struct Storm {
    ok: u64,
    failed: u64,
    pubs: u64,
    all_ms: u64,
    hist: Hist,
}

/// S5: every client learns its position, all drop, publications go out, all reconnect at once
/// and recover.
pub(super) async fn recovery(ctx: &mut Ctx) -> Result<Value> {
    let pid = ctx.args.server_pid.clone();
    let size = ctx.args.size;
    let (connected, connect_ms) = ctx.spawn_workers("recover", ctx.args.conns).await?;
    let mut publisher = ctx.publisher().await?;
    let mut seq = 0;
    let channels = vec![ctx.args.channel.clone()];
    // Warm-up publications: every client learns its position. Wait (up to 20 s) until
    // every client has them all, so that the drop leaves exactly the publications made
    // while disconnected to recover, for every system.
    let warm = publisher
        .run(20.0, 0.25, &channels, 0, size, &mut seq, &mut |_| {})
        .await?;
    ctx.set_phase("warm-up deliveries");
    let t_warm = Instant::now();
    let warm_received = wait_warm_up(ctx, warm * connected as u64).await?;
    let warm_wait_ms = t_warm.elapsed().as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.set_phase("dropping all");
    ctx.tell_all("drop").await?;
    ctx.hear_all("dropped", Duration::from_secs(30)).await?;
    ctx.set_phase("publishing while disconnected");
    let missed = publisher
        .run(
            100.0,
            ctx.args.missed as f64 / 100.0,
            &channels,
            1,
            size,
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
    ctx.tell_all(&format!("reconnect {missed}")).await?;
    let mut storm = Storm::default();
    for v in ctx.hear_all("recovered", Duration::from_secs(90)).await? {
        storm.ok += v["ok"].as_u64().unwrap_or(0);
        storm.failed += v["failed"].as_u64().unwrap_or(0);
        storm.pubs += v["pubs"].as_u64().unwrap_or(0);
        storm.all_ms = storm.all_ms.max(v["all_ms"].as_u64().unwrap_or(0));
        storm.hist.merge(&hist_of(&v, "hist"));
    }
    let storm_s = t0.elapsed().as_secs_f64();
    let s1 = sample_all(&pid);
    let extra = json!({
        "connected": connected, "connect_ms": connect_ms, "missed": missed,
        "warmup": warm, "warmup_received": warm_received, "warmup_wait_ms": warm_wait_ms,
        "recovered_ok": storm.ok, "recovered_failed": storm.failed,
        "recovered_pubs": storm.pubs, "expected_pubs": missed * connected as u64,
        "time_to_all_ms": storm.all_ms, "recover_latency_us": storm.hist.summary(),
        "server_cpu_s": s1.cpu_s - s0.cpu_s,
        "server_user_s": s1.user_s - s0.user_s, "server_sys_s": s1.sys_s - s0.sys_s, "storm_s": storm_s, "loadavg": load,
        "server_rss_kb": s1.rss_kb,
    });
    eprintln!("  recovery: {extra}");
    Ok(extra)
}

/// Asks the workers every 100 ms, for up to 20 s, until they have received `expected`
/// publications in all; returns the last count.
async fn wait_warm_up(ctx: &mut Ctx, expected: u64) -> Result<u64> {
    let t_warm = Instant::now();
    let mut warm_received = 0;
    while t_warm.elapsed() < Duration::from_secs(20) {
        ctx.tell_all("received 0").await?;
        warm_received = ctx
            .hear_all("received", Duration::from_secs(10))
            .await?
            .iter()
            .map(|v| v["received"].as_u64().unwrap_or(0))
            .sum();
        if warm_received >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(warm_received)
}
