//! The results: one row per (workload, contender), printed as one table with ratios, and
//! written as JSON with the same figures.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::measure::Sample;

/// Who ran a row.
pub(crate) const OURS: &str = "ours";
/// This library with coalescing off, where the `OURS` row of a workload has it on.
pub(crate) const OURS_SINGLE: &str = "ours, coalescing off";
pub(crate) const PUBLISHED: &str = "groupcache 0.3.0";
pub(crate) const ECHO: &str = "tonic echo";
pub(crate) const MOKA: &str = "moka get";
pub(crate) const QUICK: &str = "quick_cache get";
pub(crate) const MAP: &str = "HashMap get+clone";
pub(crate) const FANOUT: &str = "tokio fan-out";
pub(crate) const GO: &str = "Go groupcache";

/// One figure.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) contender: &'static str,
    pub(crate) sample: Sample,
    /// Loader calls during the measurement, where a loader ran.
    pub(crate) loads: Option<u64>,
    /// Anything else the row must say (hop share, per-round loads, errors).
    pub(crate) note: String,
    /// Further figures for the JSON output.
    pub(crate) extra: Value,
}

impl Row {
    pub(crate) fn new(workload: &str, contender: &'static str, sample: Sample) -> Self {
        let mut note = String::new();
        if sample.errors > 0 {
            let _ = write!(
                note,
                "{} errors, first: {}",
                sample.errors,
                sample.first_error.as_deref().unwrap_or("?")
            );
        }
        Row {
            workload: workload.to_owned(),
            contender,
            sample,
            loads: None,
            note,
            extra: Value::Null,
        }
    }

    pub(crate) fn loads(mut self, loads: u64) -> Self {
        self.loads = Some(loads);
        self
    }

    pub(crate) fn note(mut self, note: impl AsRef<str>) -> Self {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(note.as_ref());
        self
    }

    /// Adds `extra` to the row's JSON record (the fields of objects are merged).
    pub(crate) fn extra(mut self, extra: Value) -> Self {
        match (&mut self.extra, extra) {
            (Value::Object(fields), Value::Object(more)) => fields.extend(more),
            (slot, extra) => *slot = extra,
        }
        self
    }

    /// Whether the row measured anything that worked.
    fn usable(&self) -> bool {
        self.sample.ops > 0 && self.sample.errors == 0
    }
}

/// `ours` ops/s divided by `other`'s, for rows of the same workload.
fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    if row.contender == OURS || !row.usable() {
        return None;
    }
    let ours = rows
        .iter()
        .find(|r| r.workload == row.workload && r.contender == OURS && r.usable())?;
    Some(ours.sample.ops_per_sec() / row.sample.ops_per_sec())
}

pub(crate) fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

pub(crate) fn rate(ops_per_sec: f64) -> String {
    if ops_per_sec >= 1e6 {
        format!("{:.2} M/s", ops_per_sec / 1e6)
    } else if ops_per_sec >= 1e3 {
        format!("{:.1} k/s", ops_per_sec / 1e3)
    } else {
        format!("{ops_per_sec:.0}/s")
    }
}

/// The table, as printed (and pasted into BENCHMARKS.md: it is Markdown).
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| workload | contender | ops/s | p50 | p99 | loads | ours vs this | note |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload,
            row.contender,
            if s.ops > 0 {
                rate(s.ops_per_sec())
            } else {
                "-".into()
            },
            if s.ops > 0 {
                duration(s.p50_ns())
            } else {
                "-".into()
            },
            if s.ops > 0 {
                duration(s.p99_ns())
            } else {
                "-".into()
            },
            row.loads.map_or_else(|| "-".into(), |l| l.to_string()),
            ratio(rows, row).map_or_else(String::new, |r| format!("{r:.2}x")),
            row.note,
        );
    }
    out
}

pub(crate) fn json(rows: &[Row], settings: Value) -> Value {
    let list: Vec<Value> = rows
        .iter()
        .map(|row| {
            let s = &row.sample;
            json!({
                "workload": row.workload,
                "contender": row.contender,
                "ops": s.ops,
                "seconds": s.elapsed.as_secs_f64(),
                "ops_per_sec": s.ops_per_sec(),
                "p50_ns": (s.ops > 0).then(|| s.p50_ns()),
                "p99_ns": (s.ops > 0).then(|| s.p99_ns()),
                "errors": s.errors,
                "first_error": s.first_error,
                "loads": row.loads,
                "ours_vs_this": ratio(rows, row),
                "note": row.note,
                "extra": row.extra,
            })
        })
        .collect();
    json!({ "settings": settings, "rows": list })
}
