//! S1: idle connections.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The S1 section.
pub(super) fn write(md: &mut String, results: &[Named]) -> Result<()> {
    let idle_g = get(results, "s1-idle-gyre");
    writeln!(md, "## S1: idle connections\n")?;
    writeln!(
        md,
        "Connect N clients (no subscriptions), wait 2 s, then hold for the hold time while they answer the servers' pings (Gyre: 25 s interval, so ~half to all of the clients are pinged in the window; Socket.IO: 25 s; NATS: 2 min). RSS per connection is (RSS − RSS before the first connection) / N, RSS and CPU summed over the system's processes when it runs as several (one process holds fewer than 20,000 sockets on this machine).\n"
    )?;
    writeln!(
        md,
        "| system | conns | server processes | connect time | connects/s | RSS KB/conn | CPU µs/s per conn | server CPU % | RSS vs floor | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let floor_kb = get(results, "s1-idle-floor").map_or(0.0, |r| f(&r["extra"]["rss_kb_per_conn"]));
    for r in by(results, "s1-idle-") {
        let e = &r["extra"];
        writeln!(
            md,
            "| {} | {} | {} | {:.1} s | {} | {:.1} | {:.2} | {:.1} | {} | {} |",
            label(r),
            e["connected"],
            r["params"]["server_processes"].as_u64().unwrap_or(1),
            f(&e["connect_ms"]) / 1e3,
            k(f(&e["connects_per_s"])),
            f(&e["rss_kb_per_conn"]),
            f(&e["cpu_us_per_s_per_conn"]),
            f(&e["cpu_pct"]),
            ratio(f(&e["rss_kb_per_conn"]), floor_kb),
            load_note(&e["loadavg"]),
        )?;
    }
    writeln!(
        md,
        "\nKernel socket memory (both ends of each loopback connection, from /proc/net/sockstat) is not in RSS: {} KB per connection pair in the Gyre run.\n",
        idle_g.map_or("?".into(), |r| format!(
            "{:.1}",
            f(&r["extra"]["kernel_tcp_kb_per_conn_both_ends"])
        ))
    )?;
    Ok(())
}
