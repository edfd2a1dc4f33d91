//! The targets table: each target measured in this suite run, met or not.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::values::*;

/// The targets table: each target measured in this suite run, met or not.
pub(super) fn write_targets(md: &mut String, results: &[Named]) -> Result<()> {
    writeln!(md, "## Targets\n")?;
    writeln!(md, "| target | measured | met? |\n|---|---|---|")?;
    if let Some(r) = get(results, "s1-idle-gyre") {
        write_s1_targets(md, r)?;
    }
    write_s2_targets(md, results)?;
    if let Some(r) = get(results, "s5-recovery-gyre") {
        write_s5_target(md, r)?;
    }
    writeln!(md)?;
    Ok(())
}

/// The "met?" column.
fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// S1: memory and CPU per idle connection of Gyre's run.
fn write_s1_targets(md: &mut String, r: &Value) -> Result<()> {
    let kb = f(&r["extra"]["rss_kb_per_conn"]);
    let cpu = f(&r["extra"]["cpu_us_per_s_per_conn"]);
    writeln!(
        md,
        "| S1 ≤ 8 KB RSS per idle connection (Centrifugo 27 KB default, 11 KB tuned) | {kb:.1} KB | {} |",
        yes(kb <= 8.0)
    )?;
    writeln!(
        md,
        "| S1 ≤ 1.5 µs/s CPU per idle connection (Centrifugo 4.7 default, 2.2 tuned) | {cpu:.2} µs/s | {} |",
        yes(cpu <= 1.5)
    )?;
    Ok(())
}

/// S2: Gyre's best step against the floor, Socket.IO and NATS.
fn write_s2_targets(md: &mut String, results: &[Named]) -> Result<()> {
    let best = |name: &str| get(results, name).and_then(best_step);
    let (s2s, s2n) = (best("s2-fanout-socketio"), best("s2-fanout-nats"));
    // Each comparison only when both runs are in this suite run (`--only` runs a subset), for
    // Gyre speaking JSON and Protobuf (the floor with the same encoding; the peers have one).
    for (encoding, gyre, floor) in [
        ("JSON", best("s2-fanout-gyre"), best("s2-fanout-floor")),
        (
            "Protobuf",
            best("s2-fanout-gyre-protobuf"),
            best("s2-fanout-floor-protobuf"),
        ),
    ] {
        if gyre.is_none() {
            continue;
        }
        if floor.is_some() {
            let (g, fl) = (delivered(gyre), delivered(floor));
            writeln!(
                md,
                "| S2 {encoding}: ≥ 60% of the floor's deliveries/s at p99 ≤ 200 ms | {} vs {} ({:.0}%) | {} |",
                k(g),
                k(fl),
                100.0 * g / fl.max(1.0),
                yes(g >= 0.6 * fl)
            )?;
        }
        if s2s.is_some() {
            let (g, so) = (delivered(gyre), delivered(s2s));
            writeln!(
                md,
                "| S2 {encoding}: ≥ 5× Socket.IO (deliveries/s at p99 ≤ 200 ms) | {} vs {} ({}) | {} |",
                k(g),
                k(so),
                ratio(g, so),
                yes(g >= 5.0 * so)
            )?;
        }
        if s2n.is_some() {
            let (gc, nc) = (per_core(gyre), per_core(s2n));
            writeln!(
                md,
                "| S2 {encoding}: ahead of NATS per core (deliveries per server CPU-second, at each one's best step) | {} vs {} ({}) | {} |",
                k(gc),
                k(nc),
                ratio(gc, nc),
                yes(gc > nc)
            )?;
        }
    }
    Ok(())
}

/// S5: how many of Gyre's clients recovered, and how fast.
fn write_s5_target(md: &mut String, r: &Value) -> Result<()> {
    let e = &r["extra"];
    let ok = f(&e["recovered_ok"]);
    let t = f(&e["time_to_all_ms"]);
    writeln!(
        md,
        "| S5 10,000 clients reconnect and recover within 2 s | {} recovered in {:.2} s | {} |",
        ok,
        t / 1e3,
        yes(ok >= 10_000.0 && t <= 2000.0)
    )?;
    Ok(())
}
