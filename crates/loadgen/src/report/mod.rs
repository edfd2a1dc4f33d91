//! BENCHMARKS.md and the latency-versus-rate SVG, from the result files of one suite run.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

/// Report settings.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReportArgs {
    /// Directory of result JSON files (one suite run, with machine.json).
    #[arg(long)]
    pub(crate) dir: String,
    /// Markdown output.
    #[arg(long)]
    pub(crate) out: String,
    /// SVG plot output.
    #[arg(long)]
    pub(crate) svg: String,
    /// Hand-written notes appended to the report (profiles, analysis).
    #[arg(long, default_value = "bench/notes.md")]
    pub(crate) notes: String,
}

mod cross_node;
mod head;
mod load;
mod s1;
mod s2;
mod s3;
mod s4;
mod s5;
mod s7;
mod spread;
mod svg;
mod targets;
mod values;

use values::{Named, by};

/// Writes the report.
pub(crate) fn run(args: &ReportArgs) -> Result<()> {
    let (machine, results) = load::load_run(&args.dir)?;
    let earlier = load::earlier_runs(args, &machine);
    let (md, svg) = render(args, &machine, &results, &earlier)?;
    std::fs::write(&args.out, md)?;
    std::fs::write(&args.svg, svg)?;
    Ok(())
}

/// The report (Markdown) and the plot (SVG) from one run's results and earlier runs of the
/// same commit, section by section.
fn render(
    args: &ReportArgs,
    machine: &Value,
    results: &[Named],
    earlier: &[load::Run],
) -> Result<(String, String)> {
    let mut md = String::new();
    head::write_title(&mut md, machine, results)?;
    targets::write_targets(&mut md, results)?;
    spread::write_spread(&mut md, results, earlier)?;
    s1::write(&mut md, results)?;
    s2::write(&mut md, results, &values::svg_link(&args.out, &args.svg))?;
    cross_node::write(&mut md, results)?;
    s3::write(&mut md, results)?;
    s4::write(&mut md, results)?;
    s5::write(&mut md, results)?;
    s7::write(&mut md, results)?;
    writeln!(
        md,
        "## Micro-benchmarks\n\n`cargo bench -p gyre-protocol --bench codec` (criterion): encode and decode of a publication push and of commands, JSON and Protobuf, plus joining 16 units into one frame (the writer's batching). `cargo bench -p gyre-server --bench hub`: one publication broadcast to 1,000 and 10,000 subscribers (encode once, continuity check, push onto every session's queue) and one hand-over through a session's queue. Figures from the last run are in the notes below.\n"
    )?;
    if let Ok(notes) = std::fs::read_to_string(&args.notes) {
        md.push_str(&notes);
    }
    Ok((md, svg::svg(&by(results, "s2-fanout-"))))
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
