//! S4: the publish path.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The S4 section.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    writeln!(md, "## S4: the publish path\n")?;
    writeln!(
        md,
        "No subscribers. Latency is from the scheduled time to each publish's response; every row is one open-loop publisher on one server.\n\n\
         - Gyre: the HTTP API publisher pipelines POSTs on 2 keep-alive connections; the client publisher sends `publish` commands on one WebSocket (batched per 1 ms tick). `bench` keeps history (100 publications, 300 s); the `nohist:` namespace has none.\n\
         - floor: the same two publishers; started with `--history 100` it appends every publication outside a namespace to a ring of 100 per channel (the `nohist:` channel skips it), and answers the client `publish` command with an empty result after the broadcast.\n\
         - NATS: a publisher is a client connection (here on the TCP port), so there is no separate API and client path: one row per kind of publish. Without history: core `PUB` on a `verbose` connection, so the server answers `+OK` to every `PUB` (latency to the `+OK`, in order). With history: a JetStream memory stream on the subject (at most 100 messages per subject, 300 s maximum age, created by the load generator) and every publish a request whose PubAck is the response (a PubAck with `error` counts as an error).\n\
         - Socket.IO: the API is the peer's HTTP endpoint (`io.to(room).emit`); the client path is a `pub` event with an ack on one Socket.IO connection (the server broadcasts, then acks). Socket.IO has no history of its own; its equivalent is connection state recovery, whose in-memory adapter stores every room broadcast with an offset (\"recovery store\" rows, server started with `--recovery`).\n"
    )?;
    writeln!(
        md,
        "| path | publishes/s | ok | errors | p50 ms | p99 ms | server CPU % | server CPU µs per publish | load |\n|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by(results, "s4-") {
        for s in steps(r) {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} |",
                label(r),
                s["rate"],
                s["publish_ok"],
                s["publish_errors"],
                ms(&s["publish_latency_us"]["p50"]),
                ms(&s["publish_latency_us"]["p99"]),
                f(&s["server_cpu_pct"]),
                f(&s["server_cpu_us_per_publish"]),
                load_note(&s["loadavg"]),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
