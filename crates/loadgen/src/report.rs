//! BENCHMARKS.md and the latency-versus-rate SVG, from the result files of one suite run.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::Value;

/// Report settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Directory of result JSON files (one suite run, with machine.json).
    #[arg(long)]
    pub dir: String,
    /// Markdown output.
    #[arg(long)]
    pub out: String,
    /// SVG plot output.
    #[arg(long)]
    pub svg: String,
    /// Hand-written notes appended to the report (profiles, analysis).
    #[arg(long, default_value = "bench/notes.md")]
    pub notes: String,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn ms(us: &Value) -> String {
    format!("{:.1}", f(us) / 1e3)
}

fn k(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The best step of a fan-out run: highest delivered rate with p99 ≤ limit and loss ≤ 1%.
fn best_step(r: &Value) -> Option<&Value> {
    r["steps"]
        .as_array()?
        .iter()
        .filter(|s| f(&s["latency_us"]["p99"]) <= 200_000.0 && f(&s["loss_pct"]) <= 1.0)
        .max_by(|a, b| f(&a["deliveries_per_s"]).total_cmp(&f(&b["deliveries_per_s"])))
}

fn load_note(load: &Value) -> String {
    let l = load.as_str().unwrap_or("");
    let one: f64 = l
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    if one > 2.5 {
        format!("{l} ⚠")
    } else {
        l.to_owned()
    }
}

/// The table of every step of fan-out runs; `rss` heads the memory column.
/// The plot's path as seen from the report's folder (the path given when it is elsewhere).
fn svg_link(report: &str, svg: &str) -> String {
    let folder = std::path::Path::new(report)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    std::path::Path::new(svg)
        .strip_prefix(folder)
        .map_or_else(|_| svg.to_owned(), |p| p.display().to_string())
}

/// Deliveries per write system call of the server in a step ("–" in results made before it was
/// measured): how many messages the server packs into each write.
fn per_write(step: &Value) -> String {
    match step["deliveries_per_write"].as_f64() {
        Some(x) if x > 0.0 => format!("{x:.2}"),
        _ => "–".into(),
    }
}

fn write_fanout_steps(md: &mut String, runs: &[&Value], rss: &str) -> Result<()> {
    writeln!(
        md,
        "| system | publishes/s | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | CPU-s per 1M | deliveries per write | loadgen CPU % | other CPU % | {rss} | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in runs {
        for s in r["steps"].as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {:.1} | {} |",
                r["label"].as_str().unwrap_or("?"),
                s["rate"],
                k(f(&s["deliveries_per_s"])),
                f(&s["loss_pct"]),
                ms(&s["latency_us"]["p50"]),
                ms(&s["latency_us"]["p99"]),
                ms(&s["latency_us"]["p999"]),
                ms(&s["latency_us"]["max"]),
                f(&s["server_cpu_pct"]),
                f(&s["server_cpu_s_per_m"]),
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

/// The cross-node fan-out section: the memory engine's single node next to two nodes on Redis,
/// from the same suite run.
fn write_cross_node(md: &mut String, results: &[(String, Value)]) -> Result<()> {
    let runs: Vec<&Value> = results
        .iter()
        .filter(|(n, _)| {
            n.starts_with("s2x-") || n == "s2-fanout-gyre" || n == "s2-fanout-gyre-protobuf"
        })
        .map(|(_, v)| v)
        .collect();
    if !runs
        .iter()
        .any(|r| r["target"] == "gyre" && r["label"].as_str().is_some_and(|l| l.contains("Redis")))
    {
        return Ok(());
    }
    writeln!(md, "## S2 across nodes: the Redis engine\n")?;
    writeln!(
        md,
        "The S2 fan-out with the subscribers connected to node B and every publication sent to node A's HTTP API; the nodes share one `redis-server` (publication appended to the channel's stream and published by one Lua script on A, received once by B's Pub/Sub connection and fanned out locally). Both nodes and Redis run on the server CPU and their CPU time is summed (\"server CPU\"). The memory engine's single node is the same suite's S2 run.\n"
    )?;
    writeln!(
        md,
        "| system | best deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU % | CPU-s per 1M deliveries | load |\n|---|---|---|---|---|---|---|---|"
    )?;
    for r in &runs {
        let label = r["label"].as_str().unwrap_or("?");
        let label = if label.contains("Redis") {
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
    let cross: Vec<&Value> = results
        .iter()
        .filter(|(n, _)| n.starts_with("s2x-"))
        .map(|(_, v)| v)
        .collect();
    write_fanout_steps(md, &cross, "RSS MB (2 nodes + Redis)")?;
    writeln!(md)?;
    Ok(())
}

/// Writes the report.
pub fn run(args: &ReportArgs) -> Result<()> {
    let (machine, results) = load_run(&args.dir)?;
    let earlier = earlier_runs(args, &machine);
    write_report(args, &machine, &results, &earlier)
}

/// The machine description and the result files of one suite run, sorted by name.
fn load_run(dir: &str) -> Result<(Value, Vec<(String, Value)>)> {
    let mut results: Vec<(String, Value)> = Vec::new();
    let mut machine = Value::Null;
    for entry in std::fs::read_dir(dir).with_context(|| format!("results dir {dir}"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if name == "machine" {
                machine = v;
            } else if v.get("scenario").is_some() {
                results.push((name, v));
            }
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((machine, results))
}

/// Earlier complete runs of the same commit and mode (in the parent of the run's directory),
/// oldest first, at most four.
fn earlier_runs(args: &ReportArgs, machine: &Value) -> Vec<(Value, Vec<(String, Value)>)> {
    let dir = std::path::Path::new(&args.dir);
    let Some(parent) = dir.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut runs: Vec<(Value, Vec<(String, Value)>)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.as_path() != dir)
        .filter_map(|p| load_run(&p.to_string_lossy()).ok())
        .filter(|(m, _)| {
            m["gyre_commit"] == machine["gyre_commit"]
                && m["mode"] == machine["mode"]
                && m["only"].as_str().unwrap_or("").is_empty()
                && !m["gyre_commit"].as_str().unwrap_or("").ends_with("dirty")
        })
        .collect();
    runs.sort_by(|a, b| a.0["date"].as_str().cmp(&b.0["date"].as_str()));
    let skip = runs.len().saturating_sub(4);
    runs.into_iter().skip(skip).collect()
}

/// The headline figures of one run, for the run-to-run table.
fn headline(results: &[(String, Value)]) -> Vec<(&'static str, String)> {
    let get = |name: &str| results.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let idle = |key: &str, digits: usize| {
        get("s1-idle-gyre").map_or("–".into(), |r| {
            format!("{:.*}", digits, f(&r["extra"][key]))
        })
    };
    let best = |name: &str| {
        get(name).and_then(best_step).map_or("–".into(), |s| {
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
            get("s5-recovery-gyre").map_or("–".into(), |r| {
                format!("{:.2}", f(&r["extra"]["time_to_all_ms"]) / 1e3)
            }),
        ),
    ]
}

/// The run-to-run table: this run next to earlier runs of the same commit.
fn write_spread(
    md: &mut String,
    results: &[(String, Value)],
    earlier: &[(Value, Vec<(String, Value)>)],
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

/// Writes the report from one run's results and earlier runs of the same commit.
fn write_report(
    args: &ReportArgs,
    machine: &Value,
    results: &[(String, Value)],
    earlier: &[(Value, Vec<(String, Value)>)],
) -> Result<()> {
    let by = |prefix: &str| -> Vec<&Value> {
        results
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, v)| v)
            .collect()
    };
    let get = |name: &str| results.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let mut md = String::new();
    let m = machine;
    writeln!(md, "# Gyre benchmarks\n")?;
    writeln!(
        md,
        "Generated by `bench/run.sh{}` on {} (suite wall time {} s). Do not edit by hand: rerun the command. \
         Hand-written analysis lives in `bench/notes.md` and is appended at the end.\n",
        if m["mode"] == "full" { " --full" } else { "" },
        m["date"].as_str().unwrap_or("?"),
        m["suite_seconds"]
    )?;
    writeln!(md, "## Machine\n")?;
    writeln!(md, "| item | value |\n|---|---|")?;
    for (k, label) in [
        ("cpu", "CPU"),
        ("cores", "cores"),
        ("mem_gib", "memory (GiB)"),
        ("kernel", "kernel"),
        ("nofile", "open files per process"),
        ("rustc", "rustc"),
        ("gyre_commit", "gyre commit"),
        ("nats", "NATS"),
        ("redis", "Redis"),
        ("socketio", "Socket.IO"),
        ("node", "Node"),
        ("mode", "suite"),
    ] {
        writeln!(
            md,
            "| {label} | {} |",
            m[k].as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| m[k].to_string())
        )?;
    }
    writeln!(
        md,
        "\nEvery server is pinned to CPU 0 and the load generator (coordinator and worker processes) to CPU 1, \
         so \"per core\" figures are figures for one core. All traffic is on 127.0.0.1. Payloads are {} bytes of JSON \
         carrying the scheduled send time, a sequence number and the step; publishing is open loop (a fixed schedule, \
         latency counted from the scheduled time, so a stalled server shows up as latency). Load averages are read \
         from /proc/loadavg before each measurement; ⚠ marks a 1-minute load above 2.5 (other processes on this \
         2-core machine were busy), and the \"other CPU\" column is the machine's busy time not used by the server \
         or the load generator during the step.\n",
        get("s2-fanout-gyre").map_or(128.0, |r| f(&r["params"]["size"]))
    )?;

    // Targets.
    let idle_g = get("s1-idle-gyre");
    let s2g = get("s2-fanout-gyre").and_then(best_step);
    let s2f = get("s2-fanout-floor").and_then(best_step);
    let s2s = get("s2-fanout-socketio").and_then(best_step);
    let s2n = get("s2-fanout-nats").and_then(best_step);
    let rec = get("s5-recovery-gyre");
    writeln!(md, "## Targets\n")?;
    writeln!(md, "| target | measured | met? |\n|---|---|---|")?;
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    if let Some(r) = idle_g {
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
    }
    let d = |s: Option<&Value>| s.map_or(0.0, |s| f(&s["deliveries_per_s"]));
    let per_core = |s: Option<&Value>| s.map_or(0.0, |s| f(&s["deliveries_per_cpu_s"]));
    // Each comparison only when both runs are in this suite run (`--only` runs a subset), for
    // Gyre speaking JSON and Protobuf (the floor with the same encoding; the peers have one).
    for (encoding, gyre, floor) in [
        ("JSON", s2g, s2f),
        (
            "Protobuf",
            get("s2-fanout-gyre-protobuf").and_then(best_step),
            get("s2-fanout-floor-protobuf").and_then(best_step),
        ),
    ] {
        if gyre.is_none() {
            continue;
        }
        if floor.is_some() {
            let (g, fl) = (d(gyre), d(floor));
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
            let (g, so) = (d(gyre), d(s2s));
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
    if let Some(r) = rec {
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
    }
    writeln!(md)?;
    write_spread(&mut md, results, earlier)?;

    // S1.
    writeln!(md, "## S1: idle connections\n")?;
    writeln!(
        md,
        "Connect N clients (no subscriptions), wait 2 s, then hold for the hold time while they answer the servers' pings (Gyre: 25 s interval, so ~half to all of the clients are pinged in the window; Socket.IO: 25 s; NATS: 2 min). RSS per connection is (RSS − RSS before the first connection) / N, RSS and CPU summed over the system's processes when it runs as several (one process holds fewer than 20,000 sockets on this machine).\n"
    )?;
    writeln!(
        md,
        "| system | conns | server processes | connect time | connects/s | RSS KB/conn | CPU µs/s per conn | server CPU % | RSS vs floor | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let floor_kb = get("s1-idle-floor").map_or(0.0, |r| f(&r["extra"]["rss_kb_per_conn"]));
    for r in by("s1-idle-") {
        let e = &r["extra"];
        writeln!(
            md,
            "| {} | {} | {} | {:.1} s | {} | {:.1} | {:.2} | {:.1} | {} | {} |",
            r["label"].as_str().unwrap_or("?"),
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

    // S2.
    writeln!(md, "## S2: single-channel fan-out\n")?;
    writeln!(
        md,
        "One channel, {} subscribers, one publisher (HTTP API for Gyre, the floor and Socket.IO; `PUB` over TCP for NATS). The rate rises step by step until p99 > 200 ms or loss > 1%. \"best\" is the highest delivered rate with p99 ≤ 200 ms and loss ≤ 1%.\n",
        get("s2-fanout-gyre").map_or("?".into(), |r| r["extra"]["connected"].to_string())
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
        get(name).and_then(best_step)
    };
    let s2_runs = by("s2-fanout-");
    for r in &s2_runs {
        let label = r["label"].as_str().unwrap_or("?");
        let Some(s) = best_step(r) else {
            writeln!(md, "| {label} | none within p99 ≤ 200 ms | | | | | | | | |")?;
            continue;
        };
        let fl = floor_best(label);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {:.0} | {} | {:.2} | {} | {} |",
            k(f(&s["deliveries_per_s"])),
            ms(&s["latency_us"]["p50"]),
            ms(&s["latency_us"]["p99"]),
            ms(&s["latency_us"]["p999"]),
            f(&s["server_cpu_pct"]),
            k(f(&s["deliveries_per_cpu_s"])),
            f(&s["server_cpu_s_per_m"]),
            ratio(f(&s["deliveries_per_s"]), d(fl)),
            ratio(f(&s["deliveries_per_cpu_s"]), per_core(fl)),
        )?;
    }
    writeln!(
        md,
        "\nEvery step (\"deliveries per write\": deliveries divided by the write system calls of the system's processes in the step, `syscw` of `/proc/<pid>/io`: how many messages one write carries on average):\n"
    )?;
    write_fanout_steps(&mut md, &s2_runs, "RSS MB")?;
    writeln!(
        md,
        "\n![latency versus delivered rate]({})\n",
        svg_link(&args.out, &args.svg)
    )?;
    write_cross_node(&mut md, results)?;

    // S3.
    writeln!(md, "## S3: personal plus group channels, with churn\n")?;
    writeln!(
        md,
        "Every connection subscribes to its personal channel `p_<i>` and its group channel `g_<i/10>`; publishes go round-robin to the group channels (10 deliveries each); 20% of the connections reconnect per minute (connect + 2 subscribes, timed). Gyre and the floor: two `subscribe` commands, publishes through the HTTP API. NATS: `SUB p_<i>` and `SUB g_<j>` on the WebSocket connection, publishes as core `PUB` on the TCP port. Socket.IO: two `sub` events (each joins a room, acked), publishes through the HTTP endpoint (`io.to(room).emit`).\n"
    )?;
    writeln!(
        md,
        "| system | conns | publishes/s | delivered/s | delivered % | p50 ms | p99 ms | server CPU % | CPU-s per 1M | deliveries per write | churn reconnects | reconnect p50 / p99 ms | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by("s3-") {
        let e = &r["extra"];
        for s in r["steps"].as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {} | {} | {:.0} | {:.2} | {} | {} | {} / {} | {} |",
                r["label"].as_str().unwrap_or("?"),
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

    // S4.
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
    for r in by("s4-") {
        for s in r["steps"].as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} |",
                r["label"].as_str().unwrap_or("?"),
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

    // S5.
    writeln!(md, "## S5: recovery storm\n")?;
    writeln!(
        md,
        "N clients subscribe to one channel with recovery (history 100, TTL 300 s), learn their position from 5 warm-up publications (the run waits until every client has received them all), all disconnect, 10 publications go out, then all reconnect at once (256 handshakes in flight per worker) and resume from their positions. Time is from the reconnect command to each client's recovery (below); \"recovered\" counts the clients for which the system resumed the stream and every missed publication arrived.\n"
    )?;
    writeln!(
        md,
        "| system | clients | recovered | failed | publications recovered / expected | time to all | p50 ms | p99 ms | server CPU-s | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by("s5-") {
        let e = &r["extra"];
        writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} | {:.2} s | {} | {} | {:.2} | {} |",
            r["label"].as_str().unwrap_or("?"),
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

    // S7.
    writeln!(md, "## S7: slow consumers\n")?;
    writeln!(
        md,
        "Fan-out as in S2 while 1% of the subscribers never read. The others' latency should match S2 at the same rate; memory should stay bounded. Gyre disconnects a client whose queue exceeds `client.queue_max_size` (1 MiB by default); NATS closes a slow consumer once its pending data exceeds `max_pending` (64 MB by default); the floor's queues are unbounded and it never closes anyone; the Socket.IO peer sets no limit of its own on a client's outgoing buffer. \"Closed by the server\" is checked when the run ends.\n"
    )?;
    writeln!(
        md,
        "| system | subscribers (slow) | publishes/s | others' delivered % | others' p50 ms | others' p99 ms | S2 p99 ms at the same rate | slow clients closed by the server | RSS before → peak MB | load |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in by("s7-") {
        let e = &r["extra"];
        let base_name = format!("s2-fanout-{}", r["target"].as_str().unwrap_or(""));
        for s in r["steps"].as_array().into_iter().flatten() {
            let s2p99 = get(&base_name)
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
                r["label"].as_str().unwrap_or("?"),
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
    writeln!(
        md,
        "## Micro-benchmarks\n\n`cargo bench -p gyre-protocol --bench codec` (criterion): encode and decode of a publication push and of commands, JSON and Protobuf, plus joining 16 units into one frame (the writer's batching). `cargo bench -p gyre-server --bench hub`: one publication broadcast to 1,000 and 10,000 subscribers (encode once, continuity check, push onto every session's queue) and one hand-over through a session's queue. Figures from the last run are in the notes below.\n"
    )?;
    if let Ok(notes) = std::fs::read_to_string(&args.notes) {
        md.push_str(&notes);
    }
    std::fs::write(&args.out, md)?;
    std::fs::write(&args.svg, svg(&s2_runs))?;
    Ok(())
}

/// p50 and p99 latency (log scale) against delivered rate, one colour per system.
fn svg(runs: &[&Value]) -> String {
    let (w, h, l, r, t, b) = (820.0, 480.0, 70.0, 200.0, 30.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let max_x = runs
        .iter()
        .flat_map(|run| run["steps"].as_array().into_iter().flatten())
        .map(|s| f(&s["deliveries_per_s"]))
        .fold(1.0, f64::max)
        * 1.05;
    let (lo, hi) = (0.1f64.log10(), 10_000f64.log10()); // ms
    let x = |v: f64| l + pw * v / max_x;
    let y = |ms: f64| t + ph * (1.0 - (ms.max(0.1).log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
    let colours = [
        "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    ];
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">S2 fan-out: latency vs delivered rate (solid p99, dashed p50)</text>
"#,
        l + pw / 2.0
    );
    for ms in [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0] {
        let yy = y(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" x2="{}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{ms} ms</text>"##,
            l + pw,
            l - 6.0,
            yy + 4.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{l}" x2="{}" y1="{}" y2="{}" stroke="#c00" stroke-dasharray="2,3"/><text x="{}" y="{}" fill="#c00">200 ms</text>"##,
        l + pw,
        y(200.0),
        y(200.0),
        l + 4.0,
        y(200.0) - 4.0
    );
    for i in 0..=5 {
        let v = max_x * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{0}" x2="{0}" y1="{t}" y2="{1}" stroke="#eee"/><text x="{0}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(v),
            t + ph,
            t + ph + 16.0,
            k(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">delivered messages per second</text>"#,
        l + pw / 2.0,
        h - 10.0
    );
    for (i, run) in runs.iter().enumerate() {
        let c = colours[i % colours.len()];
        let steps: Vec<&Value> = run["steps"].as_array().into_iter().flatten().collect();
        for (key, dash) in [("p99", ""), ("p50", r#" stroke-dasharray="5,4""#)] {
            let pts: Vec<String> = steps
                .iter()
                .map(|st| {
                    format!(
                        "{:.1},{:.1}",
                        x(f(&st["deliveries_per_s"])),
                        y(f(&st["latency_us"][key]) / 1e3)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{}"/>"#,
                pts.join(" ")
            );
        }
        let ly = t + 20.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" x2="{1}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
            w - r + 15.0,
            w - r + 40.0,
            w - r + 46.0,
            ly + 4.0,
            run["label"].as_str().unwrap_or("?")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report and plot for a stored run are byte-identical to the golden files, which were
    /// written by the report writer before it was split into sections (testdata/gen_fixture.py
    /// made the synthetic results; `20260103` has earlier runs of its commit beside it, one of
    /// them without S3, a dirty and an `--only` run that must be left out; `20260104` is a dirty
    /// `--full` run with no earlier run, another payload size and no floor Protobuf run).
    #[test]
    fn report_matches_golden_files() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        for run_name in ["20260103-100000-quick", "20260104-100000-quick"] {
            let out_dir = std::env::temp_dir()
                .join(format!("gyre-loadgen-{}-{run_name}", std::process::id()));
            std::fs::create_dir_all(&out_dir).expect("temp dir");
            let args = ReportArgs {
                dir: format!("{data}/runs/{run_name}"),
                out: out_dir.join("BENCHMARKS.md").display().to_string(),
                svg: out_dir.join("latency-vs-rate.svg").display().to_string(),
                notes: format!("{data}/notes.md"),
            };
            run(&args).expect("report");
            for (written, golden) in [(&args.out, "md"), (&args.svg, "svg")] {
                let got = std::fs::read_to_string(written).expect("written");
                let want = std::fs::read_to_string(format!("{data}/golden/{run_name}.{golden}"))
                    .expect("golden");
                assert!(
                    got == want,
                    "{run_name}.{golden} differs from the golden file"
                );
            }
            std::fs::remove_dir_all(&out_dir).expect("clean up");
        }
    }
}
