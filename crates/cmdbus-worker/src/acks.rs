//! Acks coalesced per channel. Runs that end together (one finish statement) settle together,
//! and an ack each costs a frame, a trip through lapin's I/O thread and the broker's work per
//! frame; one `basic.ack` with `multiple` acks every delivery of the channel up to its tag.
//!
//! `multiple` covers every unsettled delivery up to the tag, a running one too, and acking a
//! message whose run is not recorded would lose it with this process. A channel numbers its
//! deliveries 1, 2, 3… across all of its consumers, so the ledger here knows which tags are
//! settled, and `multiple` names a tag only when every tag up to it is settled or being acked
//! now; the rest are acked one by one. A tag not seen yet (still in a consumer's buffer, or a
//! delivery still running) stops the `multiple`. A delivery reaches this only once its run is
//! recorded (`settle.rs`).

use lapin::{Acker, message::Delivery, options::BasicAckOptions};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};
use tokio::sync::{mpsc, oneshot};

/// Most acks one turn of the loop sends at once.
const MAX_BATCH: usize = 512;

/// One channel's ledger of settled deliveries and its ack loop; cheap to clone. The loop ends
/// when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Acks {
    ledger: Arc<Mutex<Ledger>>,
    requests: mpsc::UnboundedSender<Request>,
}

/// Which of a channel's deliveries are settled: every tag below `floor`, and those in `above`.
#[derive(Debug)]
struct Ledger {
    floor: u64,
    above: BTreeSet<u64>,
}

impl Default for Ledger {
    fn default() -> Self {
        // A channel's first delivery is tag 1.
        Self {
            floor: 1,
            above: BTreeSet::new(),
        }
    }
}

impl Ledger {
    /// The highest tag a `multiple` ack may name when `ready` is acked now: the last ready tag of
    /// the run of consecutive tags from the floor that are settled or ready. `None` when the
    /// floor's delivery is neither (running, or not handed out yet).
    fn covered<T>(&self, ready: &BTreeMap<u64, T>) -> Option<u64> {
        let mut top = None;
        for tag in self.floor.. {
            if ready.contains_key(&tag) {
                top = Some(tag);
            } else if !self.above.contains(&tag) {
                break;
            }
        }
        top
    }

    fn settle(&mut self, tag: u64) {
        if tag >= self.floor {
            self.above.insert(tag);
        }
        while self.above.remove(&self.floor) {
            self.floor += 1;
        }
    }
}

/// A delivery to ack, and who waits for its ack to be sent.
struct Request {
    tag: u64,
    acker: Acker,
    sent: oneshot::Sender<()>,
}

impl Acks {
    /// Starts the ack loop of a channel.
    pub(crate) fn start() -> Self {
        let ledger = Arc::default();
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(ack_loop(Arc::clone(&ledger), receiver));
        Self { ledger, requests }
    }

    /// A delivery was settled by a nack, its frame sent: a `multiple` ack may reach past it now.
    pub(crate) fn settled(&self, tag: u64) {
        lock(&self.ledger).settle(tag);
    }

    /// Acks `delivery` with whatever else is acked at the same time; returns once its ack (or
    /// the `multiple` ack that covers it) has been handed to the connection.
    pub(crate) async fn ack(&self, delivery: Delivery) {
        let (sent, acked) = oneshot::channel();
        let request = Request {
            tag: delivery.delivery_tag,
            acker: delivery.acker,
            sent,
        };
        match self.requests.send(request) {
            Ok(()) => {
                let _ = acked.await;
            }
            // The loop ended (its runtime is stopping): ack alone.
            Err(mpsc::error::SendError(request)) => ack(&request.acker, false).await,
        }
    }
}

/// Sends the acks asked for, in as few frames as the ledger allows.
async fn ack_loop(ledger: Arc<Mutex<Ledger>>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut covered: BTreeMap<u64, Request> = batch
            .drain(..)
            .map(|request| (request.tag, request))
            .collect();
        let top = lock(&ledger).covered(&covered);
        let alone = match top {
            Some(top) => covered.split_off(&(top + 1)),
            None => std::mem::take(&mut covered),
        };
        // The ack of the covered run's last tag acks all of it.
        let covering = covered
            .last_key_value()
            .map(|(_, request)| ack(&request.acker, covered.len() > 1));
        let frames = covering
            .into_iter()
            .chain(alone.values().map(|request| ack(&request.acker, false)));
        futures_util::future::join_all(frames).await;
        let mut ledger = lock(&ledger);
        for tag in covered.keys().chain(alone.keys()) {
            ledger.settle(*tag);
        }
        drop(ledger);
        // Only now, settled in the ledger, may their tasks let the channel go.
        for request in covered.into_values().chain(alone.into_values()) {
            let _ = request.sent.send(());
        }
    }
}

async fn ack(acker: &Acker, multiple: bool) {
    if let Err(error) = acker.ack(BasicAckOptions { multiple }).await {
        // The channel is gone: the broker requeues the messages and the claim sorts them out.
        tracing::debug!(%error, "cannot ack");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::Ledger;
    use std::collections::BTreeMap;

    fn ledger(settled: &[u64]) -> Ledger {
        let mut ledger = Ledger::default();
        for tag in settled {
            ledger.settle(*tag);
        }
        ledger
    }

    fn ready(tags: &[u64]) -> BTreeMap<u64, ()> {
        tags.iter().map(|tag| (*tag, ())).collect()
    }

    #[test]
    fn a_multiple_ack_stops_below_a_delivery_still_running() {
        // 3 still runs: 1 and 2 go as one frame, 4 and 5 one by one.
        assert_eq!(ledger(&[]).covered(&ready(&[1, 2, 4, 5])), Some(2));
    }

    #[test]
    fn nothing_is_covered_while_the_lowest_delivery_runs() {
        assert_eq!(ledger(&[1, 2, 3, 4, 5, 6]).covered(&ready(&[8, 9])), None);
    }

    #[test]
    fn a_tag_not_handed_out_yet_stops_it_too() {
        // 2 sits in another consumer's buffer: never seen, never covered.
        assert_eq!(ledger(&[]).covered(&ready(&[1, 3])), Some(1));
    }

    #[test]
    fn deliveries_settled_before_do_not_stop_it() {
        // 2 and 4 were nacked already: 1, 3 and 5 go as one frame.
        assert_eq!(ledger(&[2, 4]).covered(&ready(&[1, 3, 5])), Some(5));
    }

    #[test]
    fn the_floor_rises_past_whatever_is_settled() {
        let ledger = ledger(&[1, 2, 4, 3, 7]);
        assert_eq!((ledger.floor, ledger.above.len()), (5, 1));
        assert_eq!(ledger.covered(&ready(&[5, 6, 8])), Some(8));
    }
}
