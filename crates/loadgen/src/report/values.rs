//! The value accessors and number formats every section of the report shares.

use serde_json::Value;

/// A JSON number (0 when missing or not a number).
pub(super) fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Microseconds shown as milliseconds, one decimal.
pub(super) fn ms(us: &Value) -> String {
    format!("{:.1}", f(us) / 1e3)
}

/// A count shortened with k and M.
pub(super) fn k(x: f64) -> String {
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

/// `a / b` as a factor (– unless both are positive).
pub(super) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The best step of a fan-out run: highest delivered rate with p99 ≤ limit and loss ≤ 1%.
pub(super) fn best_step(r: &Value) -> Option<&Value> {
    r["steps"]
        .as_array()?
        .iter()
        .filter(|s| f(&s["latency_us"]["p99"]) <= 200_000.0 && f(&s["loss_pct"]) <= 1.0)
        .max_by(|a, b| f(&a["deliveries_per_s"]).total_cmp(&f(&b["deliveries_per_s"])))
}

/// A load average, marked ⚠ when the 1-minute figure is above 2.5.
pub(super) fn load_note(load: &Value) -> String {
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

/// The plot's path as seen from the report's folder (the path given when it is elsewhere).
pub(super) fn svg_link(report: &str, svg: &str) -> String {
    let folder = std::path::Path::new(report)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    std::path::Path::new(svg)
        .strip_prefix(folder)
        .map_or_else(|_| svg.to_owned(), |p| p.display().to_string())
}

/// Deliveries per write system call of the server in a step ("–" in results made before it was
/// measured): how many messages the server packs into each write.
pub(super) fn per_write(step: &Value) -> String {
    match step["deliveries_per_write"].as_f64() {
        Some(x) if x > 0.0 => format!("{x:.2}"),
        _ => "–".into(),
    }
}

/// One result file of a suite run: its name (the file stem) and its JSON.
pub(super) type Named = (String, Value);

/// The result named `name`, if the run has it.
pub(super) fn get<'a>(results: &'a [Named], name: &str) -> Option<&'a Value> {
    results.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The results whose names start with `prefix`, in name order.
pub(super) fn by<'a>(results: &'a [Named], prefix: &str) -> Vec<&'a Value> {
    results
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(_, v)| v)
        .collect()
}

/// A run's label in the report.
pub(super) fn label(run: &Value) -> &str {
    run["label"].as_str().unwrap_or("?")
}

/// A run's steps (none when it has no step list).
pub(super) fn steps(run: &Value) -> impl Iterator<Item = &Value> {
    run["steps"].as_array().into_iter().flatten()
}

/// Deliveries per second of a best step (0 without one).
pub(super) fn delivered(step: Option<&Value>) -> f64 {
    step.map_or(0.0, |s| f(&s["deliveries_per_s"]))
}

/// Deliveries per server CPU-second of a best step (0 without one).
pub(super) fn per_core(step: Option<&Value>) -> f64 {
    step.map_or(0.0, |s| f(&s["deliveries_per_cpu_s"]))
}
