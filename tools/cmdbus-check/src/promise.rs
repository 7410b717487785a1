//! One promise as a run checked it (a name, what was counted, every violation found), and the
//! small helpers the checks that build promises share.

use sqlx::PgPool;

/// Violations listed per kind before the rest are only counted.
pub(crate) const SHOWN: usize = 10;

/// One promise as the run checked it: a name, what was counted, and every violation found.
#[derive(Debug)]
pub(crate) struct Promise {
    pub(crate) name: &'static str,
    pub(crate) counts: String,
    pub(crate) violations: Vec<String>,
}

impl Promise {
    pub(crate) fn new(name: &'static str, counts: String, violations: Vec<String>) -> Self {
        Self {
            name,
            counts,
            violations,
        }
    }

    /// Whether it found any violation (a check lists at most `SHOWN` of one kind, then one
    /// line with the total).
    pub(crate) fn violated(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// One `count(*)`-like number from `sql`.
pub(crate) async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}
