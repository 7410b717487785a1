//! One subscriber's inbox: a bounded FIFO queue of the changes routed to it, each with the
//! sequence number it was published at, and a `Notify` that wakes the subscriber's task. A
//! subscriber that lets its inbox fill is told it lagged; what it missed is dropped, so a slow
//! client costs a bounded amount of memory and nobody else anything.

use cmdbus_domain::Event;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
};
use tokio::sync::Notify;

/// A command change as every subscriber it goes to shares it: the event, and the JSON text of
/// the command's view, built at most once however many subscribers send it.
#[derive(Debug)]
pub struct Change {
    /// Whose command, and its state after the change.
    pub event: Event,
    view_json: OnceLock<Option<Box<str>>>,
}

impl Change {
    pub(crate) fn new(event: Event) -> Self {
        Self {
            event,
            view_json: OnceLock::new(),
        }
    }

    /// The command's view as JSON text, serialised by the first subscriber that asks; `None`
    /// (logged once) when it cannot be serialised.
    pub fn view_json(&self) -> Option<&str> {
        self.view_json
            .get_or_init(|| {
                serde_json::to_string(&self.event.command)
                    .inspect_err(|error| tracing::error!(%error, "cannot encode a command view"))
                    .ok()
                    .map(String::into_boxed_str)
            })
            .as_deref()
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Routed {
    /// A command it follows changed.
    Change(Arc<Change>),
    /// The feed skipped changes (it fell too far behind): reload what you show, then go on.
    Reset,
}

/// The subscriber let its inbox fill: changes routed to it were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber fell behind the change feed")]
pub struct Lagged;

/// A bounded queue of routed items, in sequence order.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<(u64, Routed)>,
    capacity: usize,
    /// Items were dropped since the subscriber last looked.
    lagged: bool,
    /// The sequence number queued last: an item routed twice (by id and by `all`) is queued once.
    last: u64,
}

/// Queue capacity kept once a burst is drained: an idle subscriber holds no large buffer.
const KEPT_CAPACITY: usize = 16;

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                lagged: false,
                last: 0,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`, published at `seq`, and wakes the subscriber. A full inbox is emptied and
    /// marked lagged instead.
    pub(crate) fn push(&self, seq: u64, item: Routed) {
        let mut queue = self.lock();
        if queue.last == seq {
            return;
        }
        queue.last = seq;
        if queue.items.len() >= queue.capacity {
            queue.items = VecDeque::new();
            queue.lagged = true;
        } else {
            queue.items.push_back((seq, item));
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Pops the next item if it was published at or before `through`. Also says whether, once
    /// it is popped, the queue holds nothing published at or before `settles` (so a horizon
    /// recorded at `settles` covers nothing still queued).
    pub(crate) fn pop(&self, through: u64, settles: u64) -> Result<Option<(Routed, bool)>, Lagged> {
        let mut queue = self.lock();
        if queue.lagged {
            queue.lagged = false;
            return Err(Lagged);
        }
        if queue.items.front().is_none_or(|(seq, _)| *seq > through) {
            return Ok(None);
        }
        let Some((_, item)) = queue.items.pop_front() else {
            return Ok(None);
        };
        let settled = queue.items.front().is_none_or(|(seq, _)| *seq > settles);
        if queue.items.is_empty() && queue.items.capacity() > KEPT_CAPACITY {
            queue.items = VecDeque::new();
        }
        Ok(Some((item, settled)))
    }

    /// Resolves after the next `push` (or at once if one came since the last wait).
    pub(crate) async fn pushed(&self) {
        self.ready.notified().await;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }
}
