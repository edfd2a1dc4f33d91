//! S5: recovery storm.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The S5 section.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    writeln!(md, "## S5: recovery storm\n")?;
    writeln!(
        md,
        "N clients subscribe to one channel with recovery (history 100, TTL 300 s), learn their position from 5 warm-up publications (the run waits until every client has received them all), all disconnect, 10 publications go out, then all reconnect at once (256 handshakes in flight per worker) and resume from their positions. Time is from the reconnect command to each client's recovery (below); \"recovered\" counts the clients for which the system resumed the stream and every missed publication arrived.\n"
    )?;
    writeln!(
        md,
        "| system | clients | recovered | failed | publications recovered / expected | time to all | p50 ms | p99 ms | server CPU-s | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by(results, "s5-") {
        let e = &r["extra"];
        writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} | {:.2} s | {} | {} | {:.2} | {} |",
            label(r),
            e["connected"],
            e["recovered_ok"],
            e["recovered_failed"],
            e["recovered_pubs"],
            e["expected_pubs"],
            f(&e["time_to_all_ms"]) / 1e3,
            ms(&e["recover_latency_us"]["p50"]),
            ms(&e["recover_latency_us"]["p99"]),
            f(&e["server_cpu_s"]),
            load_note(&e["loadavg"]),
        )?;
    }
    writeln!(
        md,
        "\nWhat each system does, and when a client counts as recovered:\n\n\
         - gyre: `subscribe` with `recover`, epoch and offset; recovered when the subscribe reply says `recovered` (the missed publications are in the reply). Time: to the subscribe reply.\n\
         - floor: the same commands against its ring of 100 publications per channel (started with `--history 100`).\n\
         - nats: each subscription is a JetStream ephemeral push consumer (memory stream on the subject, max 100 per subject, 300 s; `ack_policy` none, deliver subject an inbox per client, first one `deliver_policy` new, 10 s `inactive_threshold`); the client keeps the stream sequence from each delivery's `$JS.ACK` reply subject. On reconnect it creates a new consumer from the next sequence (`by_start_sequence`); recovered when it has received the `num_pending` messages the create response announced. Time: to the last of them.\n\
         - socketio: connection state recovery (sessions kept 2 min); the client closes its WebSocket without a DISCONNECT packet (a recoverable \"transport close\"), and reconnects with its `pid` and the offset of the last event; recovered when the CONNECT reply carries the same `pid` and all missed events arrived. Time: to the last of them.\n"
    )?;
    writeln!(md)?;
    Ok(())
}
