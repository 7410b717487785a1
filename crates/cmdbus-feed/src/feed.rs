//! `ChangeFeed`: this process's in-process fan-out of command changes, the handle every source
//! publishes into (`events`, `tail`) and every reader subscribes to (`Subscriber`). It numbers
//! each change and records each horizon under the hub's one lock (see the crate doc).

use cmdbus_bus::Broker;
use cmdbus_domain::Event;
use std::sync::{Arc, MutexGuard, atomic::Ordering};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    events,
    hub::Hub,
    shared::{Horizon, Shared},
    subscriber::Subscriber,
};

/// In-process fan-out of every command change; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    shared: Arc<Shared>,
}

impl ChangeFeed {
    /// A feed with no source yet; `capacity` bounds how many items one subscriber may have
    /// queued before it is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared::new(capacity)),
        }
    }

    /// A feed that follows the `events` fanout until `shutdown`.
    pub fn start(
        broker: Broker,
        capacity: usize,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let feed = Self::new(capacity);
        let publisher = feed.clone();
        tracker.spawn(events::listen(broker, shutdown, move |event| {
            publisher.publish(event);
        }));
        feed
    }

    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.shared.hub()
    }

    /// A subscriber that follows nothing yet.
    pub fn subscriber(&self) -> Subscriber {
        let key = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
        Subscriber::new(Arc::clone(&self.shared), key)
    }

    /// Queues a change for its subscribers unless it (or a later change of the same command)
    /// was published already. Returns whether it was.
    pub fn publish(&self, event: Event) -> bool {
        self.hub().publish(event)
    }

    /// Whether `version` of command `id` (or a later one) was published already; `false` when
    /// the feed forgot it (it remembers the latest 65,536 to 131,072 commands).
    pub fn published(&self, id: Uuid, version: i64) -> bool {
        self.hub().published(id, version)
    }

    /// Every change committed in `horizon` has been published: record it as the latest resume
    /// point. Recorded under the hub's lock, so that it is ordered with every change queued.
    pub fn advance(&self, horizon: &str) {
        let cursor: Arc<str> = Arc::from(horizon);
        let hub = self.hub();
        let seq = hub.seq();
        self.shared.horizon.send_modify(|latest| {
            let number = latest.as_ref().map_or(0, |latest| latest.number) + 1;
            *latest = Some(Horizon {
                cursor,
                seq,
                number,
            });
        });
        drop(hub);
    }

    /// Changes were skipped: every subscriber that follows something must reload.
    pub fn reset(&self) {
        self.hub().reset();
    }

    /// The latest horizon, if the feed has one yet.
    pub fn horizon(&self) -> Option<Horizon> {
        self.shared.horizon()
    }

    /// Resolves once every change committed before the call has been published: the database
    /// reader has recorded two more horizons (the first may come from a pass whose snapshot was
    /// taken before the call; the second's was taken after it). A graceful stop waits on it
    /// before closing sockets, so that they carry the drain's final states.
    pub async fn caught_up(&self) {
        let mut horizon = self.shared.horizon.subscribe();
        let now = horizon.borrow().as_ref().map_or(0, Horizon::number);
        let _ = horizon
            .wait_for(|latest| {
                latest
                    .as_ref()
                    .is_some_and(|latest| latest.number >= now + 2)
            })
            .await;
    }

    /// Resolves once the feed has a horizon (its database reader is running).
    pub async fn wait_horizon(&self) {
        let mut horizon = self.shared.horizon.subscribe();
        let _ = horizon.wait_for(Option::is_some).await;
    }
}

/// A change of `id` in `tenant` at `version`, for the tests of the feed's modules.
#[cfg(test)]
pub(crate) fn test_event(tenant: &str, id: uuid::Uuid, version: i64) -> Event {
    let command = serde_json::json!({
        "id": id, "type": "test.kind", "status": "queue", "priority": 0,
        "attempt": 0, "max_attempts": 1, "version": version,
        "created_at": "2026-01-01T00:00:00Z",
    });
    Event {
        tenant: tenant.to_owned(),
        command: serde_json::from_value(command).expect("a command view"),
        traceparent: None,
    }
}
