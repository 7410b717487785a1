//! The change feed: this process's in-process broadcast of command changes, to WebSocket clients
//! and long-polling requests alike. Two sources feed it: the `events` fanout (the fast path: its
//! own exclusive, auto-delete queue, so nothing piles up while no process listens) and a reader of
//! PostgreSQL (the source of truth, which also sends horizons: resume points behind which every
//! change has been broadcast). A change that arrives twice is broadcast once.

use cmdbus_domain::Event;
use futures_util::StreamExt;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::{broadcast, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::Broker;

/// One item of the feed.
#[derive(Debug, Clone)]
pub enum Change {
    /// A command changed (its state after the change).
    Event(Arc<Event>),
    /// Every change committed in this snapshot has been broadcast before this item: a resume
    /// point for whoever received everything before it.
    Horizon(Arc<str>),
    /// The feed skipped changes (it fell too far behind): receivers must reload what they show,
    /// then go on from the next horizon.
    Reset,
}

/// Changes remembered for de-duplication, per generation of the map.
const RECENT: usize = 65_536;

/// The last version broadcast per command, in two generations: a lookup sees both, and the
/// older one is dropped when the newer fills, so memory stays bounded. A duplicate older than
/// both is broadcast again, which clients tolerate (they keep a change only if its version is
/// higher than the one they hold).
#[derive(Debug, Default)]
struct Recent {
    current: HashMap<Uuid, i64>,
    previous: HashMap<Uuid, i64>,
}

impl Recent {
    /// Records `version` of `id`; false when it (or a later one) was broadcast already.
    fn record(&mut self, id: Uuid, version: i64) -> bool {
        let seen = self
            .current
            .get(&id)
            .or_else(|| self.previous.get(&id))
            .copied();
        if seen.is_some_and(|seen| seen >= version) {
            return false;
        }
        if self.current.len() >= RECENT {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id, version);
        true
    }
}

/// In-process fan-out of every command change; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    changes: broadcast::Sender<Change>,
    horizon: watch::Sender<Option<Arc<str>>>,
    recent: Arc<Mutex<Recent>>,
}

impl ChangeFeed {
    /// A feed with no source yet; `capacity` bounds how far a receiver may lag before it is told.
    pub fn new(capacity: usize) -> Self {
        let (changes, _) = broadcast::channel(capacity);
        let (horizon, _) = watch::channel(None);
        Self {
            changes,
            horizon,
            recent: Arc::default(),
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

    /// Every item from now on. A receiver that lags more than the capacity gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Broadcasts a change unless it (or a later change of the same command) was broadcast
    /// already. Returns whether it was.
    pub fn publish(&self, event: Event) -> bool {
        let fresh = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(event.command.id, event.command.version);
        if fresh {
            // No receivers is fine: nobody is listening right now.
            let _ = self.changes.send(Change::Event(Arc::new(event)));
        }
        fresh
    }

    /// Every change committed in `horizon` has been published: say so to every receiver.
    pub fn advance(&self, horizon: &str) {
        let horizon: Arc<str> = Arc::from(horizon);
        self.horizon.send_replace(Some(Arc::clone(&horizon)));
        let _ = self.changes.send(Change::Horizon(horizon));
    }

    /// Changes were skipped: every receiver must reload.
    pub fn reset(&self) {
        let _ = self.changes.send(Change::Reset);
    }

    /// The latest horizon, if the feed has one yet. Read it after `subscribe`: every change it
    /// covers was broadcast before the receiver existed or will reach it.
    pub fn horizon(&self) -> Option<Arc<str>> {
        self.horizon.borrow().clone()
    }

    /// Resolves once the feed has a horizon (its database reader is running).
    pub async fn wait_horizon(&self) {
        let mut horizon = self.horizon.subscribe();
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

/// What following a fanout exchange reports.
#[derive(Debug)]
pub enum FanoutEvent<'a> {
    /// A fresh queue was bound (first, or again after the broker was away: what was published
    /// in between was missed).
    Bound,
    /// A message's body.
    Message(&'a [u8]),
}

impl Broker {
    /// Follows a fanout exchange until `stop`, through every session: binds a fresh exclusive
    /// queue on each, and hands every message to `on_event`.
    pub async fn follow_fanout(
        &self,
        exchange: &str,
        stop: &CancellationToken,
        mut on_event: impl FnMut(FanoutEvent<'_>),
    ) {
        let mut sessions = self.watch_sessions();
        while !stop.is_cancelled() {
            let session = tokio::select! {
                _ = stop.cancelled() => return,
                session = sessions.wait_for(Option::is_some) => match session {
                    Ok(session) => session.clone(),
                    Err(_) => return,
                },
            };
            let Some(session) = session else { continue };
            match session.subscribe_fanout(exchange).await {
                Ok(mut consumer) => {
                    on_event(FanoutEvent::Bound);
                    loop {
                        let delivery = tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = session.closed() => break,
                            delivery = consumer.next() => delivery,
                        };
                        match delivery {
                            Some(Ok(delivery)) => on_event(FanoutEvent::Message(&delivery.data)),
                            Some(Err(error)) => {
                                tracing::warn!(%error, exchange, "fanout consumer failed");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, exchange, "cannot bind to a fanout exchange"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_change_is_broadcast_once_and_memory_stays_bounded() {
        let mut recent = Recent::default();
        let id = Uuid::now_v7();
        assert!(recent.record(id, 5));
        assert!(!recent.record(id, 5));
        assert!(!recent.record(id, 4));
        assert!(recent.record(id, 6));
        for _ in 0..RECENT * 2 {
            recent.record(Uuid::now_v7(), 1);
        }
        assert!(recent.current.len() <= RECENT && recent.previous.len() <= RECENT);
    }
}
