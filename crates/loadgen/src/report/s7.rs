//! S7: slow consumers.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The S7 section.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    writeln!(md, "## S7: slow consumers\n")?;
    writeln!(
        md,
        "Fan-out as in S2 while 1% of the subscribers never read. The others' latency should match S2 at the same rate; memory should stay bounded. Gyre disconnects a client whose queue exceeds `client.queue_max_size` (1 MiB by default); NATS closes a slow consumer once its pending data exceeds `max_pending` (64 MB by default); the floor's queues are unbounded and it never closes anyone; the Socket.IO peer sets no limit of its own on a client's outgoing buffer. \"Closed by the server\" is checked when the run ends.\n"
    )?;
    writeln!(
        md,
        "| system | subscribers (slow) | publishes/s | others' delivered % | others' p50 ms | others' p99 ms | S2 p99 ms at the same rate | slow clients closed by the server | RSS before → peak MB | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by(results, "s7-") {
        let e = &r["extra"];
        let base_name = format!("s2-fanout-{}", r["target"].as_str().unwrap_or(""));
        for s in steps(r) {
            let s2p99 = get(results, &base_name)
                .and_then(|b| {
                    b["steps"]
                        .as_array()?
                        .iter()
                        .find(|x| x["rate"] == s["rate"])
                        .map(|x| ms(&x["latency_us"]["p99"]))
                })
                .unwrap_or_else(|| "–".into());
            writeln!(
                md,
                "| {} | {} ({}) | {} | {:.2} | {} | {} | {} | {} of {} | {:.1} → {:.1} | {} |",
                label(r),
                e["connected"],
                e["slow"],
                s["rate"],
                100.0 - f(&s["loss_pct"]),
                ms(&s["latency_us"]["p50"]),
                ms(&s["latency_us"]["p99"]),
                s2p99,
                e["slow_closed"],
                e["slow"],
                f(&e["base_rss_kb"]) / 1024.0,
                f(&e["peak_rss_kb"]) / 1024.0,
                load_note(&s["loadavg"]),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
