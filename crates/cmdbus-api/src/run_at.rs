//! When a submit asks its command to run: a `run_at`, or a `delay` from now (one of the two).

use chrono::{DateTime, Utc};

use crate::ApiError;

/// The longest `delay`, in seconds (366 days); a `run_at` may be as far off as it likes.
pub(crate) const MAX_DELAY_SECS: f64 = 31_622_400.0;

/// When a command is to run, from a request's `run_at` or `delay` (at most one of them):
/// `None` for at once. A `delay` counts from the api's clock; the sweep compares with the
/// database's (the same machine's, or one kept in step).
pub(crate) fn run_at_of(
    run_at: Option<DateTime<Utc>>,
    delay: Option<f64>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    match (run_at, delay) {
        (Some(_), Some(_)) => Err(ApiError::InvalidField {
            field: "delay",
            reason: "give `run_at` or `delay`, not both".to_owned(),
        }),
        (Some(run_at), None) => Ok(Some(run_at)),
        (None, Some(delay)) => {
            if !(0.0..=MAX_DELAY_SECS).contains(&delay) {
                return Err(ApiError::InvalidField {
                    field: "delay",
                    reason: format!("must be 0 to {MAX_DELAY_SECS} seconds"),
                });
            }
            let delay = chrono::Duration::microseconds((delay * 1e6).round() as i64);
            Ok(Some(Utc::now() + delay))
        }
        (None, None) => Ok(None),
    }
}
