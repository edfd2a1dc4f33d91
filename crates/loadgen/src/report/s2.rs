//! S2: single-channel fan-out, and the table of every step of fan-out runs.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::values::*;

/// The S2 section; `svg` is the plot's path as the report links it.
pub(super) fn write(md: &mut String, results: &[Named], svg: &str) -> Result<()> {
    writeln!(md, "## S2: single-channel fan-out\n")?;
    writeln!(
        md,
        "One channel, {} subscribers, one publisher (HTTP API for Gyre, the floor and Socket.IO; `PUB` over TCP for NATS). The rate rises step by step until p99 > 200 ms or loss > 1%. \"best\" is the highest delivered rate with p99 ≤ 200 ms and loss ≤ 1%.\n",
        get(results, "s2-fanout-gyre").map_or("?".into(), |r| r["extra"]["connected"].to_string())
    )?;
    writeln!(
        md,
        "| system | best deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU % | deliveries per CPU-s | CPU-s per 1M deliveries | vs floor (rate) | vs floor (per core) |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let floor_best = |label: &str| {
        let name = if label.contains("protobuf") {
            "s2-fanout-floor-protobuf"
        } else {
            "s2-fanout-floor"
        };
        get(results, name).and_then(best_step)
    };
    let s2_runs = by(results, "s2-fanout-");
    for r in &s2_runs {
        let label = label(r);
        let Some(s) = best_step(r) else {
            writeln!(md, "| {label} | none within p99 ≤ 200 ms | | | | | | | | |")?;
            continue;
        };
        let fl = floor_best(label);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            k(f(&s["deliveries_per_s"])),
            ms(&s["latency_us"]["p50"]),
            ms(&s["latency_us"]["p99"]),
            ms(&s["latency_us"]["p999"]),
            f(&s["server_cpu_pct"]),
            k(f(&s["deliveries_per_cpu_s"])),
            cpu_split(s),
            ratio(f(&s["deliveries_per_s"]), delivered(fl)),
            ratio(f(&s["deliveries_per_cpu_s"]), per_core(fl)),
        )?;
    }
    writeln!(
        md,
        "\nEvery step (\"deliveries per write\": deliveries divided by the write system calls of the system's processes in the step, `syscw` of `/proc/<pid>/io`: how many messages one write carries on average):\n"
    )?;
    write_fanout_steps(md, &s2_runs, "RSS MB")?;
    writeln!(md, "\n![latency versus delivered rate]({})\n", svg)?;
    Ok(())
}

/// The table of every step of fan-out runs; `rss` heads the memory column.
pub(super) fn write_fanout_steps(md: &mut String, runs: &[&Value], rss: &str) -> Result<()> {
    writeln!(
        md,
        "| system | publishes/s | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | CPU-s per 1M | deliveries per write | loadgen CPU % | other CPU % | {rss} | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in runs {
        for s in steps(r) {
            writeln!(
                md,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.1} | {} |",
                label(r),
                s["rate"],
                k(f(&s["deliveries_per_s"])),
                f(&s["loss_pct"]),
                ms(&s["latency_us"]["p50"]),
                ms(&s["latency_us"]["p99"]),
                ms(&s["latency_us"]["p999"]),
                ms(&s["latency_us"]["max"]),
                f(&s["server_cpu_pct"]),
                cpu_split(s),
                per_write(s),
                f(&s["loadgen_cpu_pct"]),
                f(&s["other_cpu_pct"]),
                f(&s["server_rss_kb"]) / 1024.0,
                load_note(&s["loadavg"]),
            )?;
        }
    }
    Ok(())
}

/// A step's server CPU-s per 1M deliveries as "total (user + kernel)", from utime and stime
/// (the total alone for results written before the split was recorded).
fn cpu_split(s: &Value) -> String {
    if s["server_user_s_per_m"].is_null() {
        return format!("{:.2}", f(&s["server_cpu_s_per_m"]));
    }
    format!(
        "{:.2} ({:.2} user + {:.2} kernel)",
        f(&s["server_cpu_s_per_m"]),
        f(&s["server_user_s_per_m"]),
        f(&s["server_sys_s_per_m"])
    )
}
