//! A schedule's recurrence: its cron pattern (croner) read in its IANA time zone (chrono-tz),
//! and the one rule of which ticks a sweep submits (`Recurrence::plan`), with the missed-tick
//! policy. The routes, the startup file and the sweep all parse and plan through here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::time::Duration;

use crate::ApiError;

/// Most ticks one sweep submits for one schedule; the rest wait for the next sweep.
const MAX_TICKS_PER_SWEEP: usize = 100;

/// What a sweep does with ticks it finds more than `missed_after` past (after an outage of every
/// api process, or a long pause of the sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Missed ticks submit nothing; the schedule goes on with its next tick.
    Skip,
    /// Missed ticks submit one command together (keyed by the latest of them).
    CatchUpOnce,
}

impl Missed {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::CatchUpOnce => "catch_up_once",
        }
    }

    /// Reads a stored or sent name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "skip" => Some(Missed::Skip),
            "catch_up_once" => Some(Missed::CatchUpOnce),
            _ => None,
        }
    }
}

/// A cron pattern in a time zone.
#[derive(Debug, Clone)]
pub struct Recurrence {
    cron: Cron,
    zone: Tz,
}

/// The ticks a sweep submits for a schedule, oldest first, and the schedule's next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One command each.
    pub ticks: Vec<DateTime<Utc>>,
    /// Where the schedule goes on from (after the sweep's clock, unless the ticks were capped).
    pub next: Option<DateTime<Utc>>,
}

impl Recurrence {
    /// Parses a pattern (5 fields, or 6 with seconds first; names such as `MON` and `JAN`,
    /// `L`, `W`, `#` as croner reads them) and an IANA zone name (`Europe/Paris`, `UTC`).
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, ApiError> {
        let zone: Tz = timezone.parse().map_err(|_| {
            ApiError::InvalidTimezone(format!(
                "{timezone:?} is not an IANA time zone name (such as `UTC` or `Europe/Paris`)"
            ))
        })?;
        let parsed: Cron = cron.parse().map_err(|error: croner::errors::CronError| {
            ApiError::InvalidCron(format!("{cron:?} is not a cron pattern: {error}"))
        })?;
        let recurrence = Self { cron: parsed, zone };
        if recurrence.next_after(Utc::now()).is_none() {
            return Err(ApiError::InvalidCron(format!(
                "{cron:?} has no tick after now"
            )));
        }
        Ok(recurrence)
    }

    /// The first tick strictly after `at`; `None` if there is none.
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.find(whole_second(at), false, true)
    }

    /// The first tick at or after `at`.
    fn first_from(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let floor = whole_second(at);
        // Ticks fall on whole seconds: from within a second, the first is the next one.
        self.find(floor, floor == at, true)
    }

    /// The last tick strictly before `at`.
    fn last_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let floor = whole_second(at);
        self.find(floor, floor < at, false)
    }

    /// croner searches by whole seconds of the wall clock: it is given whole seconds only.
    fn find(&self, at: DateTime<Utc>, inclusive: bool, forward: bool) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.zone);
        let found = if forward {
            self.cron.find_next_occurrence(&local, inclusive)
        } else {
            self.cron.find_previous_occurrence(&local, inclusive)
        };
        found.ok().map(|tick| tick.with_timezone(&Utc))
    }

    /// The ticks due at `now` for a schedule whose next tick is `next_run_at`. A tick no more
    /// than `missed_after` before `now` is on time and submits a command of its own (a sweep a
    /// little late submits each tick it passed); older ticks are missed and follow `missed`.
    pub fn plan(
        &self,
        next_run_at: DateTime<Utc>,
        now: DateTime<Utc>,
        missed: Missed,
        missed_after: Duration,
    ) -> Plan {
        let cutoff = now - chrono::Duration::from_std(missed_after).unwrap_or_default();
        let mut ticks = Vec::new();
        if missed == Missed::CatchUpOnce
            && next_run_at < cutoff
            && let Some(latest) = self.last_before(cutoff)
            && latest >= next_run_at
        {
            ticks.push(latest);
        }
        let mut tick = self.first_from(next_run_at.max(cutoff));
        while let Some(at) = tick.filter(|at| *at <= now) {
            if ticks.len() == MAX_TICKS_PER_SWEEP {
                // Capped: the rest are submitted by the next sweep, from this one on.
                return Plan {
                    ticks,
                    next: Some(at),
                };
            }
            ticks.push(at);
            tick = self.next_after(at);
        }
        Plan {
            ticks,
            next: self.next_after(now),
        }
    }
}

/// `at` without its fraction of a second.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("literal time")
            .with_timezone(&Utc)
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn bad_patterns_and_zones_are_refused_with_their_reason() {
        let cron = Recurrence::parse("61 * * * *", "UTC").expect_err("minute 61");
        assert_eq!(cron.code(), "invalid_cron", "{cron}");
        let zone = Recurrence::parse("* * * * *", "Mars/Olympus").expect_err("no such zone");
        assert_eq!(zone.code(), "invalid_timezone", "{zone}");
        let never = Recurrence::parse("0 0 0 1 1 * 2001", "UTC").expect_err("in the past");
        assert_eq!(never.code(), "invalid_cron", "{never}");
    }

    #[test]
    fn a_pattern_is_read_in_its_time_zone() {
        let daily = Recurrence::parse("0 9 * * *", "Europe/Paris").expect("valid");
        let next = daily
            .next_after(at("2026-07-01T08:00:00Z"))
            .expect("a tick");
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 7, 2, 7, 0, 0).unwrap());
    }

    #[test]
    fn a_slightly_late_sweep_submits_each_tick_it_passed() {
        let every_second = Recurrence::parse("* * * * * *", "UTC").expect("valid");
        let plan = every_second.plan(
            at("2026-01-01T00:00:01Z"),
            at("2026-01-01T00:00:03.500Z"),
            Missed::Skip,
            GRACE,
        );
        assert_eq!(
            plan.ticks,
            vec![
                at("2026-01-01T00:00:01Z"),
                at("2026-01-01T00:00:02Z"),
                at("2026-01-01T00:00:03Z")
            ]
        );
        assert_eq!(plan.next, Some(at("2026-01-01T00:00:04Z")));
    }

    #[test]
    fn missed_ticks_are_skipped_or_caught_up_once() {
        let yearly = Recurrence::parse("0 0 1 1 *", "UTC").expect("valid");
        let (from, now) = (at("2023-01-01T00:00:00Z"), at("2026-06-01T00:00:00Z"));
        let skipped = yearly.plan(from, now, Missed::Skip, GRACE);
        assert!(skipped.ticks.is_empty(), "{skipped:?}");
        assert_eq!(skipped.next, Some(at("2027-01-01T00:00:00Z")));
        let caught_up = yearly.plan(from, now, Missed::CatchUpOnce, GRACE);
        assert_eq!(caught_up.ticks, vec![at("2026-01-01T00:00:00Z")]);
        assert_eq!(caught_up.next, Some(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn on_time_ticks_after_missed_ones_still_run() {
        let every_second = Recurrence::parse("* * * * * *", "UTC").expect("valid");
        let plan = every_second.plan(
            at("2026-01-01T00:00:00Z"),
            at("2026-01-01T01:00:00.500Z"),
            Missed::CatchUpOnce,
            Duration::from_secs(2),
        );
        // One for the hour missed (its latest tick), then the two on time.
        assert_eq!(
            plan.ticks,
            vec![
                at("2026-01-01T00:59:58Z"),
                at("2026-01-01T00:59:59Z"),
                at("2026-01-01T01:00:00Z")
            ]
        );
    }
}
