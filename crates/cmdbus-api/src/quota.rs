//! The per-tenant quota of unfinished commands. The count is read from PostgreSQL at most once
//! a second per tenant and counted forward locally in between, so that a submit costs no extra
//! query; a burst can overshoot the quota by what one process accepts within that second.

use cmdbus_auth::AuthError;
use cmdbus_store::Db;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::ApiError;

/// How long a read count is trusted.
const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Quota {
    pool: Db,
    /// Most unfinished commands per tenant (0: unlimited).
    max: i64,
    counts: Mutex<HashMap<String, (i64, Instant)>>,
}

impl Quota {
    pub(crate) fn new(pool: Db, max: i64) -> Self {
        Self {
            pool,
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Admits `adding` more unfinished commands of `tenant`, or refuses them all.
    pub(crate) async fn admit(&self, tenant: &str, adding: i64) -> Result<(), ApiError> {
        if self.max <= 0 {
            return Ok(());
        }
        let cached = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .filter(|(_, read)| read.elapsed() < FRESH_FOR)
            .map(|(count, _)| *count);
        let count = match cached {
            Some(count) => count,
            None => cmdbus_store::count_unfinished_of(&self.pool, tenant).await?,
        };
        if count.saturating_add(adding) > self.max {
            return Err(AuthError::Limited {
                code: "quota_exceeded",
                reason: "the tenant's quota of unfinished commands is reached",
                retry_after: FRESH_FOR,
            }
            .into());
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counts
            .entry(tenant.to_owned())
            .or_insert((count, Instant::now()));
        if cached.is_none() {
            *entry = (count, Instant::now());
        }
        entry.0 += adding;
        Ok(())
    }
}
