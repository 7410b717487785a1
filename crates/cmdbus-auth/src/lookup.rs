//! Key lookups, cached and bounded in two lanes. A lookup is trusted for the key cache's time
//! (`key_cache_ttl`: the most a revocation takes to reach a process). A key that was found is
//! remembered far longer (`KNOWN_FOR`) in a map of its own that no flood of made-up keys can
//! evict, and its re-reads go through a lane of their own: the bounded queue that uncached
//! keys wait in (`UNKNOWN_LANE` at once), which made-up keys fill, never delays a real key. A
//! known key in use is re-read shortly before its entry expires, in the background, so that its
//! requests do not wait for the database at all.

use cmdbus_store::{Db, KeyRecord, StoreError};
use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;

/// Reads of keys nobody has seen found (made-up ones among them) that may run at once.
const UNKNOWN_LANE: usize = 4;
/// Re-reads of keys found before that may run at once.
const KNOWN_LANE: usize = 4;
/// How long a key found is remembered as known (for its lane), though trusted only for the
/// cache's time.
const KNOWN_FOR: Duration = Duration::from_secs(600);
/// Keys remembered as known before the oldest are forgotten.
const KNOWN_KEYS: usize = 10_000;
/// Lookups of missing keys kept before that cache starts over.
const MISSING_KEYS: usize = 100_000;

/// What the cache says of a key.
#[derive(Debug, Clone)]
struct Entry {
    record: Option<KeyRecord>,
    read: Instant,
    /// A background re-read is under way.
    refreshing: bool,
}

/// Cached lookups of keys by `K` (hash or id), with their two lanes.
#[derive(Debug)]
pub(crate) struct Lookups<K> {
    /// Keys found (`record` is `Some`) or found once and now missing, kept `KNOWN_FOR`.
    known: Mutex<HashMap<K, Entry>>,
    /// Keys never found, kept for the cache's time.
    missing: Mutex<HashMap<K, Instant>>,
    unknown_lane: Semaphore,
    known_lane: Semaphore,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a lookup stands before any read.
enum Cached {
    /// Fresh: the answer.
    Fresh(Option<KeyRecord>),
    /// Seen found before: read again in the known lane.
    Known,
    /// Never found: read in the unknown lane.
    Unknown,
}

impl<K: Eq + Hash + Copy + Send + Sync + 'static> Lookups<K> {
    pub(crate) fn new() -> Self {
        Self {
            known: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            unknown_lane: Semaphore::new(UNKNOWN_LANE),
            known_lane: Semaphore::new(KNOWN_LANE),
        }
    }

    fn cached(&self, key: &K, ttl: Duration) -> Cached {
        if let Some(entry) = lock(&self.known).get(key) {
            if entry.read.elapsed() < ttl {
                return Cached::Fresh(entry.record.clone());
            }
            return Cached::Known;
        }
        match lock(&self.missing).get(key) {
            Some(read) if read.elapsed() < ttl => Cached::Fresh(None),
            _ => Cached::Unknown,
        }
    }

    /// The record of `key` as cached, or as `read` from the database in the key's lane. A
    /// fresh known entry past half its time starts one background re-read (`this` owns the
    /// lookups, so that the task outlives no-one it needs).
    pub(crate) async fn get<F, Fut>(
        this: &Arc<Self>,
        key: K,
        ttl: Duration,
        pool: &Db,
        read: F,
    ) -> Result<Option<KeyRecord>, StoreError>
    where
        F: Fn(Db) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<KeyRecord>, StoreError>> + Send,
    {
        let lane = match this.cached(&key, ttl) {
            Cached::Fresh(record) => {
                if record.is_some() {
                    this.refresh_ahead(key, ttl, pool, read);
                }
                return Ok(record);
            }
            Cached::Known => &this.known_lane,
            Cached::Unknown => &this.unknown_lane,
        };
        let _permit = lane
            .acquire()
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        // Someone may have read it while this request waited.
        if let Cached::Fresh(record) = this.cached(&key, ttl) {
            return Ok(record);
        }
        let record = read(pool.clone()).await?;
        this.put(key, record.clone());
        Ok(record)
    }

    /// Re-reads a known key in use before its entry expires, once at a time, in the known lane.
    fn refresh_ahead<F, Fut>(self: &Arc<Self>, key: K, ttl: Duration, pool: &Db, read: F)
    where
        F: Fn(Db) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<KeyRecord>, StoreError>> + Send,
    {
        {
            let mut known = lock(&self.known);
            let Some(entry) = known.get_mut(&key) else {
                return;
            };
            if entry.refreshing || entry.read.elapsed() < ttl / 2 {
                return;
            }
            entry.refreshing = true;
        }
        let (this, pool) = (Arc::clone(self), pool.clone());
        tokio::spawn(async move {
            let read = async {
                let _permit = this.known_lane.acquire().await.ok()?;
                read(pool).await.ok()
            };
            match read.await {
                Some(record) => this.put(key, record),
                None => {
                    if let Some(entry) = lock(&this.known).get_mut(&key) {
                        entry.refreshing = false;
                    }
                }
            }
        });
    }

    fn put(&self, key: K, record: Option<KeyRecord>) {
        let mut known = lock(&self.known);
        if record.is_some() || known.contains_key(&key) {
            if known.len() >= KNOWN_KEYS && !known.contains_key(&key) {
                known.retain(|_, entry| entry.read.elapsed() < KNOWN_FOR);
                if known.len() >= KNOWN_KEYS {
                    known.clear();
                }
            }
            known.insert(
                key,
                Entry {
                    record,
                    read: Instant::now(),
                    refreshing: false,
                },
            );
            return;
        }
        drop(known);
        let mut missing = lock(&self.missing);
        if missing.len() >= MISSING_KEYS {
            missing.clear();
        }
        missing.insert(key, Instant::now());
    }

    /// Forgets cached lookups of records that match (a key this process just revoked).
    pub(crate) fn forget(&self, matches: impl Fn(&KeyRecord) -> bool) {
        lock(&self.known).retain(|_, entry| !entry.record.as_ref().is_some_and(&matches));
    }
}
