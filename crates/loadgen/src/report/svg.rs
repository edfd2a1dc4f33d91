//! The latency-versus-rate plot of the S2 runs.

use std::fmt::Write as _;

use serde_json::Value;

use super::values::*;

/// p50 and p99 latency (log scale) against delivered rate, one colour per system.
pub(super) fn svg(runs: &[&Value]) -> String {
    let (w, h, l, r, t, b) = (820.0, 480.0, 70.0, 200.0, 30.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let max_x = runs
        .iter()
        .flat_map(|run| steps(run))
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
        let steps: Vec<&Value> = steps(run).collect();
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
            label(run)
        );
    }
    s.push_str("</svg>\n");
    s
}
