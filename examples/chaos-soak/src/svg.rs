//! The plot: throughput and p99 latency per second, one panel each, with the fault windows
//! shaded and named. Hand-written SVG (two polylines, axes, bands): a plotting crate would
//! add more to build than this file holds.

use std::fmt::Write;

use crate::stats::{Span, Window};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 240.0;
const TOP: f64 = 50.0;
const GAP: f64 = 70.0;
const COLOURS: [&str; 4] = ["#e45756", "#f58518", "#54a24b", "#4c78a8"];

/// The SVG document for `windows` (one per second) and the fault spans.
pub(crate) fn plot(title: &str, windows: &[Window], faults: &[Span]) -> String {
    let seconds = windows.len().max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |s: f64| LEFT + plot_w * s / seconds;
    let height = TOP + 2.0 * PANEL + GAP + 50.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );

    let panels = [TOP, TOP + PANEL + GAP];
    // Fault bands across both panels, labelled above the first.
    for (i, fault) in faults.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for &(a, b) in &fault.pieces {
            let (x0, x1) = (x(f64::from(a) / 1000.0), x(f64::from(b) / 1000.0));
            for top in panels {
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{PANEL}" fill="{colour}" fill-opacity="0.15"/>"#,
                    (x1 - x0).max(1.0)
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{x0:.1}" y="{:.1}" fill="{colour}" font-size="10">{}</text>"#,
                TOP - 4.0,
                escape(&fault.short)
            );
        }
    }

    // Throughput, linear from 0.
    let max_rps = windows.iter().map(|w| w.requests).max().unwrap_or(1).max(1) as f64;
    let rps_top = nice_ceiling(max_rps);
    let y_rps = |v: f64| TOP + PANEL - PANEL * v / rps_top;
    axes(&mut svg, TOP, "requests / s", seconds, &x);
    for i in 0..=4 {
        let v = rps_top * f64::from(i) / 4.0;
        tick(&mut svg, y_rps(v), &format!("{v:.0}"));
    }
    line(
        &mut svg,
        windows.iter().map(|w| Some(w.requests as f64)),
        &x,
        y_rps,
        "#1f77b4",
    );

    // p99 in ms, logarithmic: steady sub-millisecond and stalled multi-second on one scale.
    let top2 = TOP + PANEL + GAP;
    let max_ms = windows
        .iter()
        .map(|w| f64::from(w.p99_us) / 1000.0)
        .fold(1.0, f64::max);
    let decades = (max_ms.log10().ceil() as i32).max(1);
    let low = -1; // 0.1 ms
    let span = f64::from(decades - low);
    let y_ms = move |ms: f64| {
        let d = ms.max(0.1).log10() - f64::from(low);
        top2 + PANEL - PANEL * d / span
    };
    axes(&mut svg, top2, "p99 latency, ms (log)", seconds, &x);
    for d in low..=decades {
        let v = 10f64.powi(d);
        tick(&mut svg, y_ms(v), &format_ms(v));
    }
    line(
        &mut svg,
        // A second without requests has no latency: a gap in the line, not a zero.
        windows
            .iter()
            .map(|w| (w.requests > 0).then(|| f64::from(w.p99_us) / 1000.0)),
        &x,
        y_ms,
        "#d62728",
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the load started (requests by the second they started in)</text>"#,
        LEFT + plot_w / 2.0,
        top2 + PANEL + 38.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The frame of a panel at `top`, its title, and ticks along the time axis.
fn axes(svg: &mut String, top: f64, title: &str, seconds: f64, x: &impl Fn(f64) -> f64) {
    let bottom = top + PANEL;
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{:.1}" height="{PANEL}" fill="none" stroke="#444"/>"##,
        WIDTH - LEFT - RIGHT
    );
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{title}</text>"#,
        top + PANEL / 2.0,
        top + PANEL / 2.0
    );
    let step = nice_ceiling(seconds / 12.0).max(1.0);
    let mut s = 0.0;
    while s <= seconds {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{bottom}" x2="{0:.1}" y2="{1:.1}" stroke="#444"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}</text>"##,
            x(s),
            bottom + 4.0,
            bottom + 17.0,
            s
        );
        s += step;
    }
}

/// A horizontal grid line at `y` with its value on the left.
fn tick(svg: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0
    );
}

/// Polylines through one value per second, drawn at the middle of each second; a `None`
/// breaks the line.
fn line(
    svg: &mut String,
    values: impl Iterator<Item = Option<f64>>,
    x: &impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
    colour: &str,
) {
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    for (i, v) in values.enumerate() {
        match v {
            Some(v) => runs.last_mut().expect("never empty").push(format!(
                "{:.1},{:.1}",
                x(i as f64 + 0.5),
                y(v)
            )),
            None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    for points in runs.iter().filter(|r| !r.is_empty()) {
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
    }
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * power)
}

fn format_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(5000.0), 5000.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn the_plot_is_one_svg_with_both_lines_and_the_faults() {
        let windows = vec![
            Window {
                requests: 100,
                failed: 0,
                p99_us: 900,
            };
            10
        ];
        let faults = [Span {
            label: "kill -9 n2, back after 2s".into(),
            short: "kill <n2>".into(),
            pieces: vec![(2000, 4000)],
            slot: Some(1),
            latencies: crate::stats::Latencies::InFlight,
        }];
        let svg = plot("soak", &windows, &faults);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        for line in svg.lines() {
            assert_eq!(
                line.matches('"').count() % 2,
                0,
                "unbalanced quotes: {line}"
            );
        }
        assert!(svg.contains("kill &lt;n2&gt;"));

        // A second without requests breaks the latency line, not the throughput line.
        let mut gap = windows.clone();
        gap[4].requests = 0;
        gap[4].p99_us = 0;
        assert_eq!(plot("soak", &gap, &faults).matches("<polyline").count(), 3);
    }
}
