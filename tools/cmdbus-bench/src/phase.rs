//! One measured window of end-to-end load: warm up, measure for the duration (latencies, the
//! throughput, and the CPU each process group spent), drain, and print what was seen.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    args::Load,
    cpu::{Accounting, Usage},
    load::{self, Submitter},
    report::latency_table,
    track::{Measured, Tracker},
    ws::Watcher,
};

/// What one window measured.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) load: String,
    pub(crate) window: Duration,
    pub(crate) measured: Measured,
    pub(crate) usage: Usage,
    /// Measured commands whose outcome was not pushed within the drain.
    pub(crate) unfinished: usize,
    /// What went wrong with the watcher, if anything.
    pub(crate) problem: Option<String>,
}

impl Phase {
    /// Sustained end-to-end throughput: successes pushed inside the window, per second.
    pub(crate) fn per_sec(&self) -> f64 {
        self.measured.successes_in_window as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// What went wrong in the window, if anything: failures, refused or skipped submits,
    /// commands unfinished after the drain, the watcher's trouble.
    pub(crate) fn notes(&self) -> Vec<String> {
        let measured = &self.measured;
        let mut notes = Vec::new();
        if measured.failures_in_window > 0 {
            notes.push(format!("{} failed", measured.failures_in_window));
        }
        if !measured.refused.is_empty() {
            let mut refused: Vec<_> = measured.refused.iter().collect();
            refused.sort();
            let refused: Vec<String> = refused
                .iter()
                .map(|(status, count)| match status {
                    0 => format!("{count} without an answer"),
                    status => format!("{count} × {status}"),
                })
                .collect();
            notes.push(format!("submits refused: {}", refused.join(", ")));
        }
        if measured.skipped > 0 {
            notes.push(format!(
                "{} scheduled submits skipped (too many in flight)",
                measured.skipped
            ));
        }
        if self.unfinished > 0 {
            notes.push(format!(
                "{} measured commands not finished after the drain",
                self.unfinished
            ));
        }
        if let Some(problem) = &self.problem {
            notes.push(problem.clone());
        }
        notes
    }
}

/// Runs `load` through one window.
pub(crate) async fn run(
    submitter: &Submitter,
    tracker: &Arc<Tracker>,
    watcher: &Watcher,
    load: &Load,
    accounting: &Accounting,
) -> Phase {
    let start = Instant::now() + load.warmup;
    let end = start + load.duration;
    tracker.measure(start, end);
    let sampler = tokio::spawn({
        let accounting = accounting.clone();
        async move {
            tokio::time::sleep_until(start.into()).await;
            let before = accounting.sample();
            tokio::time::sleep_until(end.into()).await;
            let after = accounting.sample();
            accounting.usage(&before, &after)
        }
    });
    load::drive(submitter, tracker, load, end).await;
    let usage = match sampler.await {
        Ok(usage) => usage,
        // The sampler cannot panic short of a bug; measure nothing rather than fail the run.
        Err(_) => accounting.usage(&accounting.sample(), &accounting.sample()),
    };
    let unfinished = tracker.measured_in_flight();
    Phase {
        load: load.describe(),
        window: load.duration,
        measured: tracker.take(),
        usage,
        unfinished,
        problem: watcher.problem(),
    }
}

/// The report of one window.
pub(crate) fn render(title: &str, phase: &Phase) -> String {
    let measured = &phase.measured;
    let mut out = format!(
        "{title}: {} — {:.1} s window\n",
        phase.load,
        phase.window.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  end-to-end throughput {:>8.0} commands/s  ({} successes pushed in the window)",
        phase.per_sec(),
        measured.successes_in_window
    );
    for note in phase.notes() {
        let _ = writeln!(out, "  note: {note}");
    }
    out.push_str(&latency_table(&[
        ("submit → 202", &measured.accepted),
        ("submit → success committed", &measured.committed),
        ("submit → success pushed", &measured.pushed),
    ]));
    out.push_str(&phase.usage.table(measured.successes_in_window, "command"));
    out
}
