//! The quota of unfinished commands, per tenant and, for browser tokens, per subject: one end
//! user's submits stop at its share of the tenant's quota and short of the reserve kept for the
//! tenant's API keys (`cmdbus_auth::Shares`), so that the backend still submits when one user has
//! submitted all it may. Each count is read from PostgreSQL at most once a second and counted
//! forward locally in between, so that a submit costs no extra query; a burst can overshoot by
//! what one process accepts within that second (and the time one count takes).

use cmdbus_auth::{AuthError, Principal, Shares};
use cmdbus_store::Db;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::ApiError;

/// How long a read count is trusted.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Counts kept before those not read for a while are dropped.
const KEPT_COUNTS: usize = 10_000;
/// How long an unused count is kept once there are many.
const KEPT_FOR: Duration = Duration::from_secs(60);

/// What a count counts: a tenant's unfinished commands, or those of one of its subjects.
type Counted = (String, Option<String>);

#[derive(Debug)]
pub(crate) struct Quota {
    pool: Db,
    /// Most unfinished commands per tenant (0: unlimited).
    max: i64,
    shares: Shares,
    counts: Arc<Mutex<HashMap<Counted, Count>>>,
}

/// A count as last read and counted forward since.
#[derive(Debug, Clone, Copy)]
struct Count {
    count: i64,
    read: Instant,
    /// A read of a fresh count is under way: nobody else starts one.
    refreshing: bool,
    /// Admitted while that read was under way: added to what it reads, since it may have
    /// read before they were recorded (counting some twice until the next read, never none).
    during: i64,
}

impl Quota {
    pub(crate) fn new(pool: Db, max: i64, shares: Shares) -> Self {
        Self {
            pool,
            max,
            shares,
            counts: Arc::default(),
        }
    }

    /// Admits `adding` more unfinished commands of the principal's tenant (and subject, for a
    /// token), or refuses them all: past the tenant's quota (for a token: past it less the keys'
    /// reserve), `quota_exceeded`; past the subject's share, `subject_quota_exceeded`. Only the
    /// first submit of a tenant or subject waits for its count; after that a stale count is
    /// used while one read of a fresh one runs, so a busy second costs one query, not one per
    /// request.
    pub(crate) async fn admit(&self, principal: &Principal, adding: i64) -> Result<(), ApiError> {
        let max = u64::try_from(self.max).unwrap_or(0);
        let Some(ceilings) = self.shares.ceilings(principal, max) else {
            return Ok(());
        };
        let tenant: Counted = (principal.tenant.clone(), None);
        let tenant_count = self.count(&tenant).await?;
        if tenant_count.saturating_add(adding) > i64::try_from(ceilings.tenant).unwrap_or(i64::MAX)
        {
            return Err(AuthError::Limited {
                code: "quota_exceeded",
                reason: if ceilings.subject.is_some() {
                    "the tenant's quota of unfinished commands for browser tokens is reached \
                     (its API keys keep a reserve)"
                } else {
                    "the tenant's quota of unfinished commands is reached"
                },
                retry_after: FRESH_FOR,
            }
            .into());
        }
        let subject = match (ceilings.subject, principal.subject()) {
            (Some(most), Some(subject)) => {
                let subject: Counted = (principal.tenant.clone(), Some(subject.to_owned()));
                let count = self.count(&subject).await?;
                if count.saturating_add(adding) > i64::try_from(most).unwrap_or(i64::MAX) {
                    return Err(AuthError::Limited {
                        code: "subject_quota_exceeded",
                        reason: "this subject's share of the tenant's unfinished commands is \
                                 reached",
                        retry_after: FRESH_FOR,
                    }
                    .into());
                }
                Some((subject, count))
            }
            _ => None,
        };
        let mut counts = lock(&self.counts);
        if counts.len() >= KEPT_COUNTS {
            counts.retain(|_, count| count.read.elapsed() < KEPT_FOR);
        }
        for (counted, count) in std::iter::once((tenant, tenant_count)).chain(subject) {
            let entry = counts.entry(counted).or_insert(Count {
                count,
                read: Instant::now(),
                refreshing: false,
                during: 0,
            });
            entry.count += adding;
            if entry.refreshing {
                entry.during += adding;
            }
        }
        Ok(())
    }

    /// A count as known, or read now when it is not.
    async fn count(&self, counted: &Counted) -> Result<i64, ApiError> {
        if let Some(count) = self.known(counted) {
            return Ok(count);
        }
        Ok(read(&self.pool, counted).await?)
    }

    /// The count if one was read; when it is stale, starts one read of a fresh one.
    fn known(&self, counted: &Counted) -> Option<i64> {
        let mut counts = lock(&self.counts);
        let entry = counts.get_mut(counted)?;
        if entry.read.elapsed() >= FRESH_FOR && !entry.refreshing {
            entry.refreshing = true;
            entry.during = 0;
            let (pool, counts, counted) =
                (self.pool.clone(), Arc::clone(&self.counts), counted.clone());
            tokio::spawn(async move {
                let fresh = read(&pool, &counted).await;
                let mut counts = lock(&counts);
                if let Some(entry) = counts.get_mut(&counted) {
                    entry.refreshing = false;
                    match fresh {
                        Ok(count) => {
                            entry.count = count + entry.during;
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

/// Reads a count from PostgreSQL.
async fn read(pool: &Db, (tenant, subject): &Counted) -> Result<i64, cmdbus_store::StoreError> {
    match subject {
        None => cmdbus_store::count_unfinished_of(pool, tenant).await,
        Some(subject) => cmdbus_store::count_unfinished_of_subject(pool, tenant, subject).await,
    }
}

fn lock(
    counts: &Mutex<HashMap<Counted, Count>>,
) -> std::sync::MutexGuard<'_, HashMap<Counted, Count>> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
