//! Latency histograms (HDR, microsecond resolution) and the tables the scenarios print, plus the
//! small file through which `e2e` hands its figure to `limits`.

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::{fmt::Write as _, path::Path, time::Duration};

/// Highest latency a histogram holds (longer ones are recorded as this): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency distribution.
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    micros: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            // 3 significant digits: 0.1% precision at any magnitude.
            micros: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds are valid"),
        }
    }
}

/// The figures of one distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    pub(crate) max: Duration,
}

impl Latency {
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.micros.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub(crate) fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.micros.add(&other.micros);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.micros.len()
    }

    /// `None` when nothing was recorded.
    pub(crate) fn summary(&self) -> Option<Summary> {
        if self.micros.is_empty() {
            return None;
        }
        let at = |quantile: f64| Duration::from_micros(self.micros.value_at_quantile(quantile));
        Some(Summary {
            count: self.micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(self.micros.max()),
        })
    }
}

pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// A table of distributions in milliseconds, one row each.
pub(crate) fn latency_table(rows: &[(&str, &Latency)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let mut out = format!(
        "  {:<width$} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (label, latency) in rows {
        match latency.summary() {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "  {label:<width$} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    s.count,
                    millis(s.p50),
                    millis(s.p90),
                    millis(s.p99),
                    millis(s.p999),
                    millis(s.max),
                );
            }
            None => {
                let _ = writeln!(out, "  {label:<width$} {:>8}", 0);
            }
        }
    }
    out
}

/// What `e2e --record` writes and `limits --against` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recorded {
    /// The load that produced it (`demo.noop, closed loop, 32 in flight`).
    pub(crate) load: String,
    /// Sustained end-to-end commands per second.
    pub(crate) per_sec: f64,
}

impl Recorded {
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir:?}"))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {path:?}"))
    }

    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("cannot read {path:?}"))?;
        serde_json::from_slice(&text).with_context(|| format!("{path:?} is not an e2e record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut latency = Latency::default();
        assert_eq!(latency.summary(), None);
        for ms in 1..=1000 {
            latency.record(Duration::from_millis(ms));
        }
        let summary = latency.summary().expect("recorded");
        assert_eq!(summary.count, 1000);
        let near = |value: Duration, ms: f64| (millis(value) - ms).abs() <= ms * 0.001 + 0.001;
        assert!(near(summary.p50, 500.0), "{:?}", summary.p50);
        assert!(near(summary.p90, 900.0), "{:?}", summary.p90);
        assert!(near(summary.p99, 990.0), "{:?}", summary.p99);
        assert!(near(summary.p999, 999.0), "{:?}", summary.p999);
        assert!(near(summary.max, 1000.0), "{:?}", summary.max);
    }

    #[test]
    fn merged_histograms_count_both_and_outliers_saturate() {
        let mut first = Latency::default();
        first.record(Duration::ZERO);
        let mut second = Latency::default();
        second.record(Duration::from_secs(10 * 3600));
        first.merge(&second);
        let summary = first.summary().expect("recorded");
        assert_eq!(summary.count, 2);
        assert!(summary.max >= Duration::from_secs(3599));
    }

    #[test]
    fn the_table_has_a_row_per_distribution() {
        let mut latency = Latency::default();
        latency.record(Duration::from_micros(1500));
        let table = latency_table(&[("submit → 202", &latency), ("empty", &Latency::default())]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("p99.9"));
        assert!(lines[1].starts_with("  submit → 202"));
        assert!(lines[1].contains("1.50"));
        assert!(lines[2].trim_end().ends_with('0'));
    }
}
