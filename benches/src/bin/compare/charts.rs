//! The run as pictures: for each workload, one bar per contender showing how ours compares
//! with it ("ours vs this", ops/s over ops/s, the table's ratio) on a log scale around 1x, so
//! that 2x ahead and 2x behind are bars of the same length on either side. One SVG file per
//! workload and `all.svg` with every workload, written as plain SVG text.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::report::{self, OURS, Row, rate};

const WIDTH: f64 = 980.0;
/// Right edge of the contenders' names.
const NAMES_END: f64 = 215.0;
/// The plot: where its bars may go.
const PLOT_START: f64 = 230.0;
const PLOT_END: f64 = 590.0;
/// Where the figures at the right start.
const FIGURES_START: f64 = 605.0;
const ROW: f64 = 24.0;
const HEADER: f64 = 52.0;
const FOOTER: f64 = 26.0;
const AHEAD: &str = "#2e7d32";
const BEHIND: &str = "#c62828";
const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

/// Writes `<slug>.svg` for every workload that has a usable row of ours, and `all.svg`, after
/// removing the SVG files an earlier run left in `dir`; the paths written.
pub(crate) fn write(rows: &[Row], dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "svg") {
            std::fs::remove_file(path)?;
        }
    }
    let mut written = Vec::new();
    let mut all = String::new();
    let mut all_height = 0.0;
    for workload in workloads(rows) {
        let group: Vec<&Row> = rows.iter().filter(|r| r.workload == workload).collect();
        let Some((body, height)) = section(&workload, &group, 0.0) else {
            continue;
        };
        let path = dir.join(format!("{}.svg", slug(&workload)));
        std::fs::write(&path, document(&body, height))?;
        written.push(path);
        let (body, height) = section(&workload, &group, all_height).expect("drawn above");
        all.push_str(&body);
        all_height += height;
    }
    if !written.is_empty() {
        let path = dir.join("all.svg");
        std::fs::write(&path, document(&all, all_height))?;
        written.push(path);
    }
    Ok(written)
}

/// The workloads in the order the table has them.
fn workloads(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for row in rows {
        if !names.contains(&row.workload) {
            names.push(row.workload.clone());
        }
    }
    names
}

fn usable(row: &Row) -> bool {
    row.sample.ops > 0 && row.sample.errors == 0
}

/// One workload's chart at height `top`, and its height; `None` without a usable row of ours.
fn section(workload: &str, rows: &[&Row], top: f64) -> Option<(String, f64)> {
    let ours = rows.iter().find(|r| r.contender == OURS && usable(r))?;
    let others: Vec<&Row> = rows
        .iter()
        .filter(|r| r.contender != OURS)
        .copied()
        .collect();
    let ratio = |row: &Row| ours.sample.ops_per_sec() / row.sample.ops_per_sec();
    let widest = others
        .iter()
        .filter(|r| usable(r))
        .map(|r| ratio(r).ln().abs())
        .fold(0.0, f64::max);
    let extent = extent(widest.exp());
    let x_of = |r: f64| {
        let centre = (PLOT_START + PLOT_END) / 2.0;
        let half = (PLOT_END - PLOT_START) / 2.0;
        centre + (r.ln() / extent.ln()).clamp(-1.0, 1.0) * half
    };
    let height = HEADER + ROW * others.len().max(1) as f64 + FOOTER;
    let mut svg = String::new();
    let _ = writeln!(svg, "<g transform=\"translate(0,{top})\">");
    let _ = writeln!(
        svg,
        "<text x=\"12\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(workload)
    );
    let _ = writeln!(
        svg,
        "<text x=\"12\" y=\"38\" font-size=\"12\" fill=\"#555\">ours: {} (p50 {}). Bars: ours ÷ \
         contender in ops/s, log scale; right of 1x ours is faster.</text>",
        rate(ours.sample.ops_per_sec()),
        report::duration(ours.sample.p50_ns()),
    );
    let plot_top = HEADER;
    let plot_bottom = HEADER + ROW * others.len().max(1) as f64;
    for tick in ticks(extent) {
        let x = x_of(tick);
        let (stroke, width) = if tick == 1.0 {
            ("#333", 1.5)
        } else {
            ("#ccc", 1.0)
        };
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{plot_top}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\" \
             stroke=\"{stroke}\" stroke-width=\"{width}\"/>"
        );
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\" \
             text-anchor=\"middle\">{}</text>",
            plot_bottom + 14.0,
            times(tick)
        );
    }
    for (i, row) in others.iter().enumerate() {
        let y = HEADER + ROW * i as f64;
        let middle = y + ROW / 2.0;
        let _ = writeln!(
            svg,
            "<text x=\"{NAMES_END}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"end\">{}</text>",
            middle + 4.5,
            escape(row.contender)
        );
        if !usable(row) {
            let why = if row.sample.ops == 0 && row.sample.errors == 0 {
                row.note.clone()
            } else {
                format!("no figure ({} errors)", row.sample.errors)
            };
            let _ = writeln!(
                svg,
                "<text x=\"{PLOT_START}\" y=\"{:.1}\" font-size=\"12\" fill=\"#777\" \
                 font-style=\"italic\">{}</text>",
                middle + 4.5,
                escape(&why)
            );
            continue;
        }
        let r = ratio(row);
        let (from, to) = (x_of(1.0), x_of(r));
        let (left, width) = (from.min(to), (to - from).abs().max(1.0));
        let colour = if r >= 1.0 { AHEAD } else { BEHIND };
        let _ = writeln!(
            svg,
            "<rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"14\" \
             fill=\"{colour}\"><title>ours vs {}: {}</title></rect>",
            middle - 7.0,
            escape(row.contender),
            ratio_text(r),
        );
        // A contender that loaded what it was meant to fetch (0.3.0 at 8 MiB) says so.
        let loads = match row.loads {
            Some(n) if n > 0 => format!(", {n} loads"),
            _ => String::new(),
        };
        let _ = writeln!(
            svg,
            "<text x=\"{FIGURES_START}\" y=\"{:.1}\" font-size=\"13\"><tspan fill=\"{colour}\" \
             font-weight=\"bold\">{}</tspan> <tspan fill=\"#555\">this: {}, p50 {}{loads}\
             </tspan></text>",
            middle + 4.5,
            ratio_text(r),
            rate(row.sample.ops_per_sec()),
            report::duration(row.sample.p50_ns()),
        );
    }
    svg.push_str("</g>\n");
    Some((svg, height))
}

/// The scale's reach either side of 1x: a round ratio at least `widest`, and at least 2x.
fn extent(widest: f64) -> f64 {
    [2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        .into_iter()
        .find(|&e| e >= widest * 1.05)
        .unwrap_or(1000.0)
}

/// Grid lines: 1x, the extent on both sides, and round ratios between that are far enough
/// from 1x and from the extent for their labels not to touch.
fn ticks(extent: f64) -> Vec<f64> {
    let mut ticks = vec![1.0];
    for t in [2.0_f64, 10.0, 100.0] {
        let at = t.ln() / extent.ln();
        if (0.2..0.8).contains(&at) {
            ticks.extend([t, 1.0 / t]);
        }
    }
    ticks.extend([extent, 1.0 / extent]);
    ticks
}

/// A tick's label: `3x`, `0.33x`, `0.002x`.
fn times(ratio: f64) -> String {
    if ratio >= 1.0 {
        return format!("{ratio:.0}x");
    }
    let decimals = (-ratio.log10()).ceil() as usize + 1;
    let text = format!("{ratio:.decimals$}");
    format!("{}x", text.trim_end_matches('0'))
}

/// A bar's ratio with three significant digits or so: `373x`, `12.5x`, `0.87x`, `0.003x`.
fn ratio_text(ratio: f64) -> String {
    match ratio {
        r if r >= 100.0 => format!("{r:.0}x"),
        r if r >= 10.0 => format!("{r:.1}x"),
        r if r >= 0.1 => format!("{r:.2}x"),
        r => format!("{r:.3}x"),
    }
}

fn document(body: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" {FONT}>\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n{body}</svg>\n"
    )
}

fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_round() {
        assert_eq!(times(3.0), "3x");
        assert_eq!(times(1.0 / 3.0), "0.33x");
        assert_eq!(times(0.5), "0.5x");
        assert_eq!(times(0.002), "0.002x");
        assert_eq!(ratio_text(373.1), "373x");
        assert_eq!(ratio_text(0.866), "0.87x");
        assert_eq!(ratio_text(0.0031), "0.003x");
        assert_eq!(
            slug("remote hit 10 KiB, 64 in flight"),
            "remote-hit-10-kib-64-in-flight"
        );
    }

    #[test]
    fn ticks_leave_room_for_their_labels() {
        for extent in [2.0, 3.0, 5.0, 10.0, 50.0, 500.0] {
            let mut at: Vec<f64> = ticks(extent).iter().map(|t| t.ln() / extent.ln()).collect();
            at.sort_by(f64::total_cmp);
            assert!(
                at.windows(2).all(|w| w[1] - w[0] >= 0.2),
                "{extent}: {at:?}"
            );
        }
    }
}
