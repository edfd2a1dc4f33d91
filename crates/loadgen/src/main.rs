//! `gyre-loadgen`: the benchmark load generator for Gyre and its peers.
//!
//! - `run`: one scenario against one server (coordinator; starts worker processes).
//! - `worker`: a worker process (started by `run`).
//! - `floor`: the floor server (the machine's cost of the same fan-out).
//! - `report`: BENCHMARKS.md and the latency-versus-rate plot from result files.

#![warn(unreachable_pub)]

mod conn;
mod coord;
mod floor;
mod payload;
mod publish;
mod report;
mod stats;
mod worker;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gyre-loadgen",
    about = "Open-loop load generator for Gyre benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario against one server and write a JSON result.
    #[command(args_override_self = true)]
    Run(coord::RunArgs),
    /// Internal: a worker process holding connections.
    Worker(worker::WorkerArgs),
    /// The floor server: pre-encoded frames, same batching, nothing else.
    Floor {
        /// WebSocket port.
        #[arg(long)]
        ws_port: u16,
        /// HTTP publish port.
        #[arg(long)]
        http_port: u16,
        /// History ring size per channel outside namespaces (0: no history).
        #[arg(long, default_value_t = 0)]
        history: usize,
    },
    /// Write BENCHMARKS.md (and the SVG plot) from a directory of results.
    Report(report::ReportArgs),
}

fn local<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let set = tokio::task::LocalSet::new();
    set.block_on(&rt, f)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => local(coord::run(args)),
        Cmd::Worker(args) => local(worker::run(args)),
        Cmd::Floor {
            ws_port,
            http_port,
            history,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(floor::run(ws_port, http_port, history)),
        Cmd::Report(args) => report::run(&args),
    }
}
