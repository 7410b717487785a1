//! The per-tenant quota of unfinished commands. The count is read from PostgreSQL at most once
//! a second per tenant and counted forward locally in between, so that a submit costs no extra
//! query; a burst can overshoot the quota by what one process accepts within that second (and
//! the time one count takes).

use cmdbus_auth::AuthError;
use cmdbus_store::Db;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
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
    counts: Arc<Mutex<HashMap<String, Count>>>,
}

/// A tenant's count as last read and counted forward since.
#[derive(Debug, Clone, Copy)]
struct Count {
    count: i64,
    read: Instant,
    /// A read of a fresh count is under way: nobody else starts one.
    refreshing: bool,
}

impl Quota {
    pub(crate) fn new(pool: Db, max: i64) -> Self {
        Self {
            pool,
            max,
            counts: Arc::default(),
        }
    }

    /// Admits `adding` more unfinished commands of `tenant`, or refuses them all. Only a
    /// tenant's first submit waits for the count; after that a stale count is used while one
    /// read of a fresh one runs, so a busy second costs one query, not one per request.
    pub(crate) async fn admit(&self, tenant: &str, adding: i64) -> Result<(), ApiError> {
        if self.max <= 0 {
            return Ok(());
        }
        let known = self.known(tenant);
        let count = match known {
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
        let mut counts = lock(&self.counts);
        let entry = counts.entry(tenant.to_owned()).or_insert(Count {
            count,
            read: Instant::now(),
            refreshing: false,
        });
        entry.count += adding;
        Ok(())
    }

    /// The tenant's count if one was read; when it is stale, starts one read of a fresh one.
    fn known(&self, tenant: &str) -> Option<i64> {
        let mut counts = lock(&self.counts);
        let entry = counts.get_mut(tenant)?;
        if entry.read.elapsed() >= FRESH_FOR && !entry.refreshing {
            entry.refreshing = true;
            let (pool, counts, tenant) = (
                self.pool.clone(),
                Arc::clone(&self.counts),
                tenant.to_owned(),
            );
            tokio::spawn(async move {
                let fresh = cmdbus_store::count_unfinished_of(&pool, &tenant).await;
                let mut counts = lock(&counts);
                if let Some(entry) = counts.get_mut(&tenant) {
                    entry.refreshing = false;
                    match fresh {
                        Ok(count) => {
                            entry.count = count;
                            entry.read = Instant::now();
                        }
                        Err(error) => tracing::warn!(%error, "cannot count unfinished commands"),
                    }
                }
            });
        }
        Some(entry.count)
    }
}

fn lock(
    counts: &Mutex<HashMap<String, Count>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
