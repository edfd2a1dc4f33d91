//! The cross-node fan-out section.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::values::*;

/// The cross-node fan-out section: the memory engine's single node next to two nodes on Redis,
/// on the NATS broker and on the PostgreSQL broker, from the same suite run.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    let runs: Vec<&Value> = results
        .iter()
        .filter(|(n, _)| {
            n.starts_with("s2x-") || n == "s2-fanout-gyre" || n == "s2-fanout-gyre-protobuf"
        })
        .map(|(_, v)| v)
        .collect();
    if !runs
        .iter()
        .any(|r| r["target"] == "gyre" && r["label"].as_str().is_some_and(across_nodes))
    {
        return Ok(());
    }
    writeln!(md, "## S2 across nodes: Redis, NATS and PostgreSQL\n")?;
    writeln!(
        md,
        "The S2 fan-out with the subscribers connected to node B and every publication sent to node A's HTTP API. On Redis the nodes share one `redis-server` (publication appended to the channel's stream and published by one Lua script on A, received once by B's Pub/Sub connection and fanned out locally); on the NATS broker one `nats-server` carries the publication from A to B (no history, at most once, as upstream); on the PostgreSQL broker A calls the stream table's publish function and B's reader finds the row past its shard cursor (woken by LISTEN/NOTIFY). Both nodes and the broker's server run on the server CPU and their CPU time is summed (\"server CPU\"). The memory engine's single node is the same suite's S2 run.\n"
    )?;
    writeln!(
        md,
        "| system | best deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU % | CPU-s per 1M deliveries | load |\n|---|---|---|---|---|---|---|---|"
    )?;
    for r in &runs {
        let label = label(r);
        let label = if across_nodes(label) {
            label.to_owned()
        } else {
            format!("{label}, memory engine, 1 node")
        };
        let Some(s) = best_step(r) else {
            writeln!(md, "| {label} | none within p99 ≤ 200 ms | | | | | | |")?;
            continue;
        };
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {:.0} | {:.2} | {} |",
            k(f(&s["deliveries_per_s"])),
            ms(&s["latency_us"]["p50"]),
            ms(&s["latency_us"]["p99"]),
            ms(&s["latency_us"]["p999"]),
            f(&s["server_cpu_pct"]),
            f(&s["server_cpu_s_per_m"]),
            load_note(&s["loadavg"]),
        )?;
    }
    writeln!(md, "\nEvery step across nodes:\n")?;
    super::s2::write_fanout_steps(md, &by(results, "s2x-"), "RSS MB (2 nodes + broker)")?;
    writeln!(md)?;
    Ok(())
}

/// Whether a run's label names a two-node set-up.
fn across_nodes(label: &str) -> bool {
    label.contains("2 nodes")
}
