//! The change feed: this process's view of the `events` fanout. It binds its own exclusive,
//! auto-delete queue (so nothing piles up while no process listens) and rebroadcasts each event
//! in-process, to WebSocket clients and long-polling requests alike.

use cmdbus_domain::Event;
use futures_util::StreamExt;
use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};
use tokio::sync::{broadcast, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::Broker;

/// In-process fan-out of every state change; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    events: broadcast::Sender<Arc<Event>>,
    /// Highest version seen, so that a gap can be filled from PostgreSQL.
    high_water: Arc<AtomicI64>,
    /// Bumped each time the feed is bound to the broker again after a gap.
    rebound: watch::Sender<u64>,
}

impl ChangeFeed {
    /// Starts listening; `capacity` bounds how far a subscriber may lag before it is told so.
    pub fn start(
        broker: Broker,
        capacity: usize,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let (events, _) = broadcast::channel(capacity);
        let (rebound, _) = watch::channel(0);
        let feed = Self {
            events,
            high_water: Arc::default(),
            rebound,
        };
        tracker.spawn(listen(feed.clone(), broker, shutdown));
        feed
    }

    /// Every event from now on. A receiver that lags more than the capacity gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Broadcasts an event that did not come through the broker (a gap filled from PostgreSQL).
    pub fn inject(&self, event: Event) {
        self.high_water
            .fetch_max(event.command.version, Ordering::SeqCst);
        // No receivers is fine: nobody is listening right now.
        let _ = self.events.send(Arc::new(event));
    }

    /// The highest version this feed has carried.
    pub fn high_water(&self) -> i64 {
        self.high_water.load(Ordering::SeqCst)
    }

    /// Changes each time the feed re-binds after losing the broker: events published in between
    /// were missed and must be read from PostgreSQL.
    pub fn rebound(&self) -> watch::Receiver<u64> {
        self.rebound.subscribe()
    }
}

async fn listen(feed: ChangeFeed, broker: Broker, shutdown: CancellationToken) {
    let exchange = broker.names().events_exchange();
    let mut bound_before = false;
    broker
        .follow_fanout(&exchange, &shutdown, |event| match event {
            FanoutEvent::Bound => {
                if bound_before {
                    feed.rebound.send_modify(|epoch| *epoch += 1);
                }
                bound_before = true;
            }
            FanoutEvent::Message(data) => match serde_json::from_slice::<Event>(data) {
                Ok(event) => feed.inject(event),
                Err(error) => tracing::warn!(%error, "undecodable event"),
            },
        })
        .await;
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
