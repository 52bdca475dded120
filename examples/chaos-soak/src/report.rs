//! The report: what the run did and what it found, as text (stdout and `report.txt`).

use std::fmt::Write;

use crate::bound::{OwnershipEvent, Verdict};
use crate::monitor::Monitor;
use crate::stats::{self, Observed, Span, Window};

/// Everything the report is made of.
#[derive(Debug)]
pub(crate) struct Inputs<'a> {
    pub(crate) settings: String,
    pub(crate) seconds: usize,
    pub(crate) seen: Observed<'a>,
    pub(crate) wrong: &'a [String],
    pub(crate) windows: &'a [Window],
    pub(crate) faults: &'a [Span],
    pub(crate) events: &'a [OwnershipEvent],
    pub(crate) verdict: &'a Verdict,
    pub(crate) monitor: &'a Monitor,
    pub(crate) timeline: &'a [String],
    /// `/stats` file_loads per running node against the reads found in its log.
    pub(crate) cross_check: &'a [String],
    pub(crate) unclean_exits: &'a [String],
}

fn ms(us: u32) -> String {
    let ms = f64::from(us) / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Renders the report.
pub(crate) fn render(r: &Inputs<'_>) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "chaos soak: {}", r.settings);

    let _ = writeln!(o, "\ntimeline");
    for line in r.timeline {
        let _ = writeln!(o, "  {line}");
    }

    let requests = r.seen.samples.len() as u64;
    let steady = stats::steady(r.faults, (r.seconds * 1000) as u32);
    let all = Span {
        label: "all".into(),
        short: "all".into(),
        pieces: vec![(0, (r.seconds * 1000) as u32)],
        slot: None,
        latencies: stats::Latencies::InFlight,
    };
    let whole = stats::span_stats(&all, &r.seen, &[]);
    let _ = writeln!(o, "\nanswers");
    let _ = writeln!(
        o,
        "  requests          {requests} ({:.0}/s), p50 {}, p99 {}, max {}",
        whole.per_second,
        ms(whole.p50_us),
        ms(whole.p99_us),
        ms(whole.max_us)
    );
    let _ = writeln!(
        o,
        "  wrong answers     {}{}",
        r.wrong.len(),
        if r.wrong.is_empty() {
            " (every 200 answer equals its file)"
        } else {
            "  <-- MUST BE 0"
        }
    );
    for w in r.wrong.iter().take(10) {
        let _ = writeln!(o, "    {w}");
    }
    let _ = writeln!(o, "  failed requests   {}", r.seen.failed.len());

    let _ = writeln!(
        o,
        "\nloads (file reads, from the nodes' logs) against the bound"
    );
    let v = r.verdict;
    let _ = writeln!(o, "  distinct keys requested   {}", v.distinct_keys);
    let _ = writeln!(o, "  file reads                {}", v.loads);
    let _ = writeln!(
        o,
        "  bound                     {} (1 per key + 1 per ownership event that concerns it, {} events)",
        v.bound,
        r.events.len()
    );
    for e in r.events {
        let _ = writeln!(
            o,
            "    {:<28} keys owned: {}",
            e.what,
            e.affected.iter().filter(|&&a| a).count()
        );
    }
    let _ = writeln!(
        o,
        "  keys over their bound     {}{}",
        v.over.len(),
        if v.over.is_empty() {
            ""
        } else {
            "  <-- MUST BE 0"
        }
    );
    let mut worst = v.over.clone();
    worst.sort_by_key(|&(_, l, b)| std::cmp::Reverse(l - b));
    for (k, l, b) in worst.iter().take(8) {
        let _ = writeln!(
            o,
            "    {}: {l} reads, bound {b}",
            crate::backend::key_name(*k)
        );
    }
    if r.monitor.foreign_loads > 0 {
        let _ = writeln!(
            o,
            "  reads of unknown keys     {}  <-- MUST BE 0",
            r.monitor.foreign_loads
        );
    }
    for line in r.cross_check {
        let _ = writeln!(o, "  {line}");
    }

    let _ = writeln!(
        o,
        "\nphases: a fault's window runs from the fault to 2 s after it is over; steady is the rest"
    );
    let _ = writeln!(
        o,
        "  {:<38} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>6} {:>9}  failed elsewhere",
        "phase", "secs", "started", "req/s", "p50", "p99", "max", "reads", "at target"
    );
    for span in std::iter::once(&steady).chain(r.faults) {
        let s = stats::span_stats(span, &r.seen, r.faults);
        let secs: f64 = span
            .pieces
            .iter()
            .map(|&(a, b)| f64::from(b - a) / 1000.0)
            .sum();
        let elsewhere: Vec<String> = s
            .failed_elsewhere
            .iter()
            .map(|(f, n)| format!("{n} {f}"))
            .collect();
        let at = span.pieces.first().map_or(String::new(), |&(a, _)| {
            if span.slot.is_some() {
                format!(" @{:.0}s", f64::from(a) / 1000.0)
            } else {
                String::new()
            }
        });
        let _ = writeln!(
            o,
            "  {:<38} {:>6.1} {:>8} {:>6.0} {:>8} {:>8} {:>8} {:>6} {:>9}  {}",
            format!("{}{at}", span.label),
            secs,
            s.requests,
            s.per_second,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.max_us),
            s.reads,
            if span.slot.is_some() {
                s.failed_at_faulted.to_string()
            } else {
                "-".into()
            },
            if elsewhere.is_empty() {
                "0".into()
            } else {
                elsewhere.join(", ")
            }
        );
    }
    let _ = writeln!(
        o,
        "  (started, req/s: requests that started in the phase; p50, p99, max: over every request in \
         flight during a fault's window, and over the requests that started and ended in steady \
         time; reads: file reads on all nodes; at target: failed requests that were in flight to \
         the node the fault was done to; failed elsewhere: failures of the healthy nodes)"
    );

    let _ = writeln!(o, "\nper second: requests (p99 ms), failures marked !N");
    for (row, chunk) in r.windows.chunks(10).enumerate() {
        let cells: Vec<String> = chunk
            .iter()
            .map(|w| {
                let fail = if w.failed > 0 {
                    format!("!{}", w.failed)
                } else {
                    String::new()
                };
                format!(
                    "{:>6}({:>5.1}){fail:<4}",
                    w.requests,
                    f64::from(w.p99_us) / 1000.0
                )
            })
            .collect();
        let _ = writeln!(o, "  {:>4}s {}", row * 10, cells.join(" "));
    }

    let _ = writeln!(o, "\nmemory (VmRSS) per node process");
    for w in &r.monitor.watched {
        let kib =
            |v: Option<u64>| v.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let _ = writeln!(
            o,
            "  {:<6} pid {:<8} start {:>10}  end {:>10}  max {:>10}  file reads {:>6}{}",
            w.label,
            w.pid,
            kib(w.rss_first_kib),
            kib(w.rss_last_kib),
            kib(Some(w.rss_max_kib)),
            w.loads,
            if w.ended { "  (ended by the soak)" } else { "" }
        );
    }

    let _ = writeln!(o, "\nlog lines at WARN and ERROR, per minute (all nodes)");
    let per_minute = |times: &[u32]| {
        let mut counts = vec![0u32; r.seconds.div_ceil(60).max(1)];
        for &t in times {
            let minute = ((t / 60_000) as usize).min(counts.len() - 1);
            counts[minute] += 1;
        }
        counts
    };
    let (warn, error) = (
        per_minute(&r.monitor.warn_ms),
        per_minute(&r.monitor.error_ms),
    );
    for (minute, (w, e)) in warn.iter().zip(&error).enumerate() {
        let _ = writeln!(o, "  minute {minute}: {w} WARN, {e} ERROR");
    }
    let _ = writeln!(
        o,
        "  (lines before the load started count in minute 0; by kind:)"
    );
    let mut messages: Vec<(&String, &u64)> = r.monitor.by_message.iter().collect();
    messages.sort_by_key(|(m, n)| (std::cmp::Reverse(**n), (*m).clone()));
    for (message, n) in messages.iter().take(10) {
        let _ = writeln!(o, "  {n:>6} x {message}");
    }
    if !r.monitor.quoted.is_empty() {
        let _ = writeln!(o, "  first lines:");
        for line in &r.monitor.quoted {
            let _ = writeln!(o, "    {}", line.chars().take(240).collect::<String>());
        }
    }
    if !r.unclean_exits.is_empty() {
        let _ = writeln!(
            o,
            "\nnodes that did not exit cleanly on SIGTERM: {}",
            r.unclean_exits.join(", ")
        );
    }
    out
}
