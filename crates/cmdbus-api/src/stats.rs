//! `GET /v1/stats`: runs per minute or hour and type — how many ended in each outcome, and
//! percentiles of how long they took — read from the rollup the finish batches append to
//! (`cmdbus_store::stats`), never from `commands`.

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use cmdbus_auth::{Reach, Scope};
use cmdbus_store::StatsRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::ApiQuery,
    fields::{check_filter, name_schema},
    responses::{BadRequest, Forbidden, Unavailable},
};

/// How long minute buckets reach back at most (and by default, 2 hours).
const MINUTES_KEPT: Duration = Duration::hours(24);
/// How long hour buckets reach back at most (the rollup's retention; by default, 7 days).
const HOURS_KEPT: Duration = Duration::days(8);

/// The size of a bucket of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Bucket {
    /// One minute.
    #[default]
    Minute,
    /// One hour.
    Hour,
}

/// Query of `GET /v1/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// The size of each bucket: `minute` (the default) or `hour`.
    #[param(inline)]
    bucket: Option<Bucket>,
    /// The first bucket holds this time (RFC 3339). Default: 2 hours ago for minutes, 7 days
    /// for hours; at most 24 hours back for minutes and 8 days for hours (earlier is cut).
    since: Option<DateTime<Utc>>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(schema_with = kind_filter)]
    kind: Option<String>,
}

/// Percentiles of how long runs took, in milliseconds, read off a fixed histogram (within a
/// bucket, by linear interpolation).
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub(crate) struct HandlerMs {
    /// The median.
    p50: f64,
    /// 95% took at most this long.
    p95: f64,
    /// 99% took at most this long.
    p99: f64,
}

/// The runs of one type in one bucket of time.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsPoint {
    /// The start of the bucket.
    at: DateTime<Utc>,
    /// The command type.
    #[serde(rename = "type")]
    kind: String,
    /// Runs that succeeded.
    success: i64,
    /// Runs that failed for good.
    fail: i64,
    /// Runs that failed and will be tried again.
    retry: i64,
    /// Runs stopped by a cancel.
    cancelled: i64,
    /// Runs taken back from a worker that stopped renewing its lease.
    lease_lost: i64,
    /// How long the runs above (but those whose lease was lost) took, from claim to finish;
    /// `null` when there were none.
    #[schema(required = true)]
    handler_ms: Option<HandlerMs>,
}

/// Runs over time.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// The size of each bucket.
    bucket: Bucket,
    /// Oldest first, then by type; a bucket without runs is absent.
    series: Vec<StatsPoint>,
}

/// Runs over time, per type.
///
/// How many runs ended in each outcome, per minute or per hour, and how long they took
/// (percentiles). Read from a rollup the workers' finish batches append to, kept 8 days. API
/// keys only: a browser token, limited to a subject or ids, is refused.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "getStats",
    tag = "operate",
    params(StatsQuery),
    responses(
        (status = 200, description = "Runs per bucket and type.", body = Stats),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn stats(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<ApiJson<Stats>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    // The tenant's whole activity: not for a token limited to a subject or ids.
    if principal.reach != Reach::Tenant {
        return Err(cmdbus_auth::AuthError::Forbidden("read (on the whole tenant)").into());
    }
    if let Some(kind) = &query.kind {
        check_filter("type", kind)?;
    }
    let bucket = query.bucket.unwrap_or_default();
    let (default, kept) = match bucket {
        Bucket::Minute => (Duration::hours(2), MINUTES_KEPT),
        Bucket::Hour => (Duration::days(7), HOURS_KEPT),
    };
    let now = Utc::now();
    let since = query.since.unwrap_or(now - default).max(now - kept);
    let (rows, bounds) = cmdbus_store::stats(
        &state.pool,
        &principal.tenant,
        bucket == Bucket::Hour,
        since,
        query.kind.as_deref(),
    )
    .await?;
    Ok(ApiJson(Stats {
        bucket,
        series: series(&rows, &bounds),
    }))
}

/// One point per (time, type) of `rows` (sorted that way), with its counts and percentiles.
fn series(rows: &[StatsRow], bounds: &[f64]) -> Vec<StatsPoint> {
    let mut series = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let key = (&rows[start].at, &rows[start].kind);
        let end = start
            + rows[start..]
                .iter()
                .take_while(|row| (&row.at, &row.kind) == key)
                .count();
        let group = &rows[start..end];
        let count = |outcome: &str| -> i64 {
            group
                .iter()
                .filter(|row| row.outcome == outcome)
                .map(|row| row.count)
                .sum()
        };
        let mut histogram = vec![0i64; bounds.len() + 1];
        for row in group.iter().filter(|row| {
            matches!(
                row.outcome.as_str(),
                "success" | "fail" | "retry" | "cancelled"
            )
        }) {
            if let Some(slot) = usize::try_from(row.bucket)
                .ok()
                .and_then(|bucket| histogram.get_mut(bucket))
            {
                *slot += row.count;
            }
        }
        series.push(StatsPoint {
            at: *key.0,
            kind: key.1.clone(),
            success: count("success"),
            fail: count("fail"),
            retry: count("retry"),
            cancelled: count("cancelled"),
            lease_lost: count("lease_lost"),
            handler_ms: percentiles(&histogram, bounds),
        });
        start = end;
    }
    series
}

/// p50, p95 and p99 of a histogram whose bucket `i` holds values in `[bounds[i-1], bounds[i])`
/// (bucket 0 from 0, the last one at its lower bound); `None` when it is empty.
fn percentiles(histogram: &[i64], bounds: &[f64]) -> Option<HandlerMs> {
    let total: i64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let at = |quantile: f64| -> f64 {
        let rank = quantile * total as f64;
        let mut below = 0.0;
        for (bucket, &count) in histogram.iter().enumerate() {
            let count = count as f64;
            if count > 0.0 && below + count >= rank {
                let low = if bucket == 0 { 0.0 } else { bounds[bucket - 1] };
                let Some(&high) = bounds.get(bucket) else {
                    return low;
                };
                let within = ((rank - below) / count).clamp(0.0, 1.0);
                return ((low + (high - low) * within) * 100.0).round() / 100.0;
            }
            below += count;
        }
        bounds.last().copied().unwrap_or(0.0)
    };
    Some(HandlerMs {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    })
}

// A field whose schema comes from a function loses its doc comment: this says it again.
fn kind_filter() -> utoipa::openapi::Object {
    name_schema("Only this type.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_their_bucket() {
        let bounds = [1.0, 2.0, 5.0, 10.0];
        assert_eq!(percentiles(&[0, 0, 0, 0, 0], &bounds), None);
        // 100 runs between 2 and 5 ms: the median halfway.
        let uniform = percentiles(&[0, 0, 100, 0, 0], &bounds).expect("runs");
        assert_eq!(uniform.p50, 3.5);
        assert_eq!(uniform.p99, 4.97);
        // 90 fast, 10 slow: p95 lies among the slow ones.
        let tail = percentiles(&[90, 0, 0, 10, 0], &bounds).expect("runs");
        assert!(
            tail.p50 < 1.0 && (5.0..10.0).contains(&tail.p95),
            "{tail:?}"
        );
        // Past the last bound: the bound itself.
        let slow = percentiles(&[0, 0, 0, 0, 3], &bounds).expect("runs");
        assert_eq!(slow.p50, 10.0);
    }
}
