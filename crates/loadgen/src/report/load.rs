//! Reading the result files of one suite run and of earlier runs of the same commit.

use anyhow::{Context, Result};
use serde_json::Value;

use super::ReportArgs;
use super::values::Named;

/// One suite run: its machine description and its result files, sorted by name.
pub(super) type Run = (Value, Vec<Named>);

/// The machine description and the result files of one suite run, sorted by name.
pub(super) fn load_run(dir: &str) -> Result<Run> {
    let mut results: Vec<Named> = Vec::new();
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
pub(super) fn earlier_runs(args: &ReportArgs, machine: &Value) -> Vec<Run> {
    let dir = std::path::Path::new(&args.dir);
    let Some(parent) = dir.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut runs: Vec<Run> = entries
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
