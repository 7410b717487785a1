//! What the feed and its subscribers share, at the bottom of the crate: the routing index under
//! its one lock, and the latest horizon (the resume point every change it covers was queued
//! before). `ChangeFeed` writes both; a `Subscriber` follows through the index and reads the
//! horizon before its inbox.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::AtomicU64};
use tokio::sync::watch;

use crate::hub::Hub;

/// A resume point: every change committed in this PostgreSQL snapshot has been published into
/// the feed.
#[derive(Debug, Clone)]
pub struct Horizon {
    pub(crate) cursor: Arc<str>,
    /// The sequence number of the last change published when it was recorded.
    pub(crate) seq: u64,
    /// 1 for the feed's first horizon, then one more each time it advances.
    pub(crate) number: u64,
}

impl Horizon {
    /// The cursor a client resumes from.
    pub fn cursor(&self) -> &Arc<str> {
        &self.cursor
    }

    /// How many times the feed's horizon has advanced up to this one.
    pub fn number(&self) -> u64 {
        self.number
    }
}

/// The state of one feed, behind one pointer.
#[derive(Debug)]
pub(crate) struct Shared {
    hub: Mutex<Hub>,
    pub(crate) horizon: watch::Sender<Option<Horizon>>,
    /// Items one subscriber may have queued before it is told it lagged.
    pub(crate) capacity: usize,
    pub(crate) next_key: AtomicU64,
}

impl Shared {
    pub(crate) fn new(capacity: usize) -> Self {
        let (horizon, _) = watch::channel(None);
        Self {
            hub: Mutex::default(),
            horizon,
            capacity,
            next_key: AtomicU64::new(0),
        }
    }

    /// The routing index, locked: every change is queued and every horizon recorded under it.
    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest horizon, if the feed has one yet.
    pub(crate) fn horizon(&self) -> Option<Horizon> {
        self.horizon.borrow().clone()
    }
}
