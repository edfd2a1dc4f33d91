//! S3: personal plus group channels, with churn.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The S3 section.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    writeln!(md, "## S3: personal plus group channels, with churn\n")?;
    writeln!(
        md,
        "Every connection subscribes to its personal channel `p_<i>` and its group channel `g_<i/10>`; publishes go round-robin to the group channels (10 deliveries each); 20% of the connections reconnect per minute (connect + 2 subscribes, timed). Gyre and the floor: two `subscribe` commands, publishes through the HTTP API. NATS: `SUB p_<i>` and `SUB g_<j>` on the WebSocket connection, publishes as core `PUB` on the TCP port. Socket.IO: two `sub` events (each joins a room, acked), publishes through the HTTP endpoint (`io.to(room).emit`).\n"
    )?;
    writeln!(
        md,
        "| system | conns | publishes/s | delivered/s | delivered % | p50 ms | p99 ms | server CPU % | CPU-s per 1M | deliveries per write | churn reconnects | reconnect p50 / p99 ms | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by(results, "s3-") {
        let e = &r["extra"];
        for s in steps(r) {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {} | {} | {:.0} | {:.2} | {} | {} | {} / {} | {} |",
                label(r),
                e["connected"],
                s["rate"],
                k(f(&s["deliveries_per_s"])),
                100.0 - f(&s["loss_pct"]),
                ms(&s["latency_us"]["p50"]),
                ms(&s["latency_us"]["p99"]),
                f(&s["server_cpu_pct"]),
                f(&s["server_cpu_s_per_m"]),
                per_write(s),
                e["churns"],
                ms(&e["churn_latency_us"]["p50"]),
                ms(&e["churn_latency_us"]["p99"]),
                load_note(&s["loadavg"]),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
