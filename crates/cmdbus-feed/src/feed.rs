//! The change feed: this process's in-process fan-out of command changes, to WebSocket clients
//! and long-polling requests alike. Two sources feed it: the `events` fanout (the fast path: its
//! own exclusive, auto-delete queue, so nothing piles up while no process listens) and a reader of
//! PostgreSQL (the source of truth, which also advances the horizon: a resume point behind which
//! every change has been published). A change that arrives twice is published once.
//!
//! A change goes only to the subscribers that follow it (`hub`): an index from command id to
//! subscribers, plus per tenant those that follow `all`. Each subscriber has a bounded inbox of
//! its own (`inbox`); a subscriber that lets it fill is told it lagged, and nobody else is
//! slowed or dropped by it. The JSON text of a change is built once, by the first subscriber
//! that sends it, and shared by the others.
//!
//! The invariant that makes cursors safe: every change gets a sequence number and is queued
//! into its subscribers' inboxes under one lock; `advance` records a horizon under the same
//! lock, with the sequence number reached, after every change it covers was published. A
//! subscriber may hand out a horizon once its inbox holds nothing numbered up to it
//! (`subscriber`). Recording a horizon touches no subscriber, so idle ones cost nothing.

mod hub;
mod inbox;
mod subscriber;

use cmdbus_domain::Event;
use futures_util::StreamExt;
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError,
    atomic::{AtomicU64, Ordering},
};
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::Broker;
use hub::Hub;

pub use inbox::{Change, Lagged, Routed};
pub use subscriber::{Delivery, Subscriber};

/// A resume point: every change committed in this PostgreSQL snapshot has been published into
/// the feed.
#[derive(Debug, Clone)]
pub struct Horizon {
    cursor: Arc<str>,
    /// The sequence number of the last change published when it was recorded.
    seq: u64,
    /// 1 for the feed's first horizon, then one more each time it advances.
    number: u64,
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

/// In-process fan-out of every command change; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    hub: Mutex<Hub>,
    horizon: watch::Sender<Option<Horizon>>,
    /// Items one subscriber may have queued before it is told it lagged.
    capacity: usize,
    next_key: AtomicU64,
}

impl ChangeFeed {
    /// A feed with no source yet; `capacity` bounds how many items one subscriber may have
    /// queued before it is told it lagged.
    pub fn new(capacity: usize) -> Self {
        let (horizon, _) = watch::channel(None);
        Self {
            shared: Arc::new(Shared {
                hub: Mutex::default(),
                horizon,
                capacity,
                next_key: AtomicU64::new(0),
            }),
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
        tracker.spawn(listen(feed.clone(), broker, shutdown));
        feed
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.shared
            .hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A subscriber that follows nothing yet.
    pub fn subscriber(&self) -> Subscriber {
        let key = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
        Subscriber::new(self.clone(), key, self.shared.capacity)
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
        self.shared.horizon.borrow().clone()
    }

    /// Resolves once the feed has a horizon (its database reader is running).
    pub async fn wait_horizon(&self) {
        let mut horizon = self.shared.horizon.subscribe();
        let _ = horizon.wait_for(Option::is_some).await;
    }
}

async fn listen(feed: ChangeFeed, broker: Broker, shutdown: CancellationToken) {
    let exchange = broker.names().events_exchange();
    broker
        .follow_fanout(&exchange, &shutdown, |event| {
            if let FanoutEvent::Message(data) = event {
                match decode_events(data) {
                    Ok(events) => {
                        for event in events {
                            feed.publish(event);
                        }
                    }
                    // PostgreSQL still has the change: the database reader delivers it.
                    Err(error) => tracing::warn!(%error, "undecodable event"),
                }
            }
        })
        .await;
}

/// The changes one events message carries: an `Event` object, or an array of them.
fn decode_events(data: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    if data.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        serde_json::from_slice(data)
    } else {
        serde_json::from_slice(data).map(|event| vec![event])
    }
}

/// A change of `id` in `tenant` at `version`, for the tests of the feed's modules.
#[cfg(test)]
fn test_event(tenant: &str, id: uuid::Uuid, version: i64) -> Event {
    let command = serde_json::json!({
        "id": id, "type": "test.kind", "status": "queue", "priority": 0,
        "attempt": 0, "max_attempts": 1, "version": version,
        "created_at": "2026-01-01T00:00:00Z",
    });
    Event {
        tenant: tenant.to_owned(),
        command: serde_json::from_value(command).expect("a command view"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_events_message_carries_one_change_or_several() {
        let event = |version: i64| {
            serde_json::json!({"tenant": "t", "command": {
                "id": Uuid::now_v7(), "type": "demo.noop", "status": "queue", "version": version,
                "attempt": 0, "max_attempts": 1, "priority": 0, "generation": 0,
                "created_at": "2026-11-22T00:00:00Z"}})
        };
        let one = serde_json::to_vec(&event(1)).unwrap_or_default();
        let many = serde_json::to_vec(&[event(1), event(2)]).unwrap_or_default();
        let decoded = |data: &[u8]| decode_events(data).map(|events| events.len());
        assert_eq!(decoded(&one).ok(), Some(1), "{:?}", decoded(&one));
        assert_eq!(decoded(&many).ok(), Some(2));
        assert!(decode_events(b"[{}]").is_err());
    }
}
