//! The run-to-run table: the headline figures of this run next to earlier runs.

use std::fmt::Write as _;

use anyhow::Result;

use super::values::*;

/// The headline figures of one run, for the run-to-run table.
fn headline(results: &[Named]) -> Vec<(&'static str, String)> {
    let idle = |key: &str, digits: usize| {
        get(results, "s1-idle-gyre").map_or("–".into(), |r| {
            format!("{:.*}", digits, f(&r["extra"][key]))
        })
    };
    let best = |name: &str| {
        get(results, name)
            .and_then(best_step)
            .map_or("–".into(), |s| {
                format!(
                    "{} ({:.2})",
                    k(f(&s["deliveries_per_s"])),
                    f(&s["server_cpu_s_per_m"])
                )
            })
    };
    vec![
        ("S1 Gyre RSS KB per connection", idle("rss_kb_per_conn", 1)),
        (
            "S1 Gyre CPU µs/s per connection",
            idle("cpu_us_per_s_per_conn", 2),
        ),
        ("S2 Gyre JSON best/s (CPU-s per 1M)", best("s2-fanout-gyre")),
        (
            "S2 Gyre Protobuf best/s (CPU-s per 1M)",
            best("s2-fanout-gyre-protobuf"),
        ),
        (
            "S2 floor JSON best/s (CPU-s per 1M)",
            best("s2-fanout-floor"),
        ),
        ("S2 NATS best/s (CPU-s per 1M)", best("s2-fanout-nats")),
        (
            "S2 Socket.IO best/s (CPU-s per 1M)",
            best("s2-fanout-socketio"),
        ),
        (
            "S2 Gyre on Redis, 2 nodes, best/s (CPU-s per 1M)",
            best("s2x-fanout-gyre-redis"),
        ),
        (
            "S5 seconds until 10,000 recovered",
            get(results, "s5-recovery-gyre").map_or("–".into(), |r| {
                format!("{:.2}", f(&r["extra"]["time_to_all_ms"]) / 1e3)
            }),
        ),
    ]
}

/// The run-to-run table: this run next to earlier runs of the same commit.
pub(super) fn write_spread(
    md: &mut String,
    results: &[Named],
    earlier: &[super::load::Run],
) -> Result<()> {
    writeln!(
        md,
        "## Run to run
"
    )?;
    if earlier.is_empty() {
        writeln!(
            md,
            "No earlier complete run of this commit and mode is in `bench/out`: run the command again to see the spread.\n"
        )?;
        return Ok(());
    }
    let mut columns: Vec<Vec<(&'static str, String)>> =
        earlier.iter().map(|(_, r)| headline(r)).collect();
    columns.push(headline(results));
    write!(md, "| figure |")?;
    for (m, _) in earlier {
        write!(md, " {} |", m["date"].as_str().unwrap_or("?"))?;
    }
    writeln!(md, " this run |")?;
    writeln!(md, "|---|{}", "---|".repeat(columns.len()))?;
    for row in 0..columns[0].len() {
        write!(md, "| {} |", columns[0][row].0)?;
        for column in &columns {
            write!(md, " {} |", column[row].1)?;
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "\nEvery run above is a complete `bench/run.sh` of the same commit on this machine; \"best/s\" moves in whole steps of the rate ladder, so one step up or down between runs is within noise.\n"
    )?;
    Ok(())
}
