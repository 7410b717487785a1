//! A subscriber of the change feed: one WebSocket connection or one long-poll. It names the
//! commands it follows (ids, or its tenant's `all`); the feed queues only those changes into its
//! inbox, and it pops them in publication order.
//!
//! The cursor rule: a subscriber may hand out a horizon H once no change covered by H is still
//! in its inbox. Every change H covers was queued before H was recorded (`ChangeFeed::advance`),
//! so reading H first and then finding nothing numbered up to H's sequence number in the inbox
//! means each of them was popped, that is, sent (or, for the item being popped, about to be sent
//! in the same message). `next` applies this rule and says when it holds; nothing needs to
//! visit idle subscribers when the horizon moves.

use std::{collections::HashSet, sync::Arc};
use uuid::Uuid;

use crate::{
    hub::Member,
    inbox::{Inbox, Lagged, Routed},
    shared::{Horizon, Shared},
};

/// One item popped from the inbox.
#[derive(Debug)]
pub struct Delivery {
    /// The item.
    pub item: Routed,
    /// The latest horizon, when nothing it covers is queued behind this item: once this item is
    /// sent (or skipped), a cursor the subscriber may hand out.
    pub horizon: Option<Horizon>,
}

/// A subscription to the change feed; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscriber {
    shared: Arc<Shared>,
    member: Member,
    ids: HashSet<Uuid>,
    /// The tenant whose every change it follows.
    all: Option<Arc<str>>,
}

impl Subscriber {
    pub(crate) fn new(shared: Arc<Shared>, key: u64) -> Self {
        let capacity = shared.capacity;
        Self {
            shared,
            member: Member {
                key,
                inbox: Arc::new(Inbox::new(capacity)),
            },
            ids: HashSet::new(),
            all: None,
        }
    }

    /// Follows these commands too: from now on their changes are queued for this subscriber.
    pub fn follow_ids(&mut self, ids: &[Uuid]) {
        let mut hub = self.shared.hub();
        for &id in ids {
            if self.ids.insert(id) {
                hub.follow_id(&self.member, id);
            }
        }
    }

    /// Follows every command of `tenant` (one tenant per subscriber: a later call for another
    /// tenant replaces it).
    pub fn follow_all(&mut self, tenant: &str) {
        if self.all.as_deref() == Some(tenant) {
            return;
        }
        let tenant: Arc<str> = Arc::from(tenant);
        let mut hub = self.shared.hub();
        if let Some(previous) = self.all.take() {
            hub.unfollow_all(self.member.key, &previous);
        }
        hub.follow_all(&self.member, &tenant);
        self.all = Some(tenant);
    }

    /// Stops following these commands (changes already queued stay queued: check `wants`).
    pub fn unfollow_ids(&mut self, ids: &[Uuid]) {
        let mut hub = self.shared.hub();
        for id in ids {
            if self.ids.remove(id) {
                hub.unfollow_id(self.member.key, *id);
            }
        }
        if !self.follows_anything() {
            hub.unlist(self.member.key);
        }
    }

    /// Stops following every command of its tenant.
    pub fn unfollow_all(&mut self) {
        let Some(tenant) = self.all.take() else {
            return;
        };
        let mut hub = self.shared.hub();
        hub.unfollow_all(self.member.key, &tenant);
        if !self.follows_anything() {
            hub.unlist(self.member.key);
        }
    }

    /// Whether changes of `id` are wanted now (they are routed by id or by the tenant's `all`;
    /// the caller checks the tenant).
    pub fn wants(&self, id: Uuid) -> bool {
        self.all.is_some() || self.ids.contains(&id)
    }

    /// Whether it follows anything at all.
    pub fn follows_anything(&self) -> bool {
        self.all.is_some() || !self.ids.is_empty()
    }

    /// How many ids it follows one by one.
    pub fn id_count(&self) -> usize {
        self.ids.len()
    }

    /// The next item, waiting for one; `Lagged` when the inbox overflowed since the last call.
    pub async fn next(&self) -> Result<Delivery, Lagged> {
        loop {
            if let Some(delivery) = self.try_next()? {
                return Ok(delivery);
            }
            self.member.inbox.pushed().await;
        }
    }

    /// The next item, if one is queued.
    pub fn try_next(&self) -> Result<Option<Delivery>, Lagged> {
        // The horizon first, then the inbox: see the module comment.
        let horizon = self.shared.horizon();
        let settles = horizon.as_ref().map_or(0, |horizon| horizon.seq);
        Ok(self
            .member
            .inbox
            .pop(u64::MAX, settles)?
            .map(|(item, settled)| Delivery {
                item,
                horizon: horizon.filter(|_| settled),
            }))
    }

    /// The next item if it is covered by `horizon` (was published before it was recorded):
    /// popping these until `None` makes `horizon` a cursor this subscriber may hand out.
    pub fn next_covered_by(&self, horizon: &Horizon) -> Result<Option<Routed>, Lagged> {
        Ok(self
            .member
            .inbox
            .pop(horizon.seq, horizon.seq)?
            .map(|(item, _)| item))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if !self.follows_anything() {
            return;
        }
        let mut hub = self.shared.hub();
        for id in &self.ids {
            hub.unfollow_id(self.member.key, *id);
        }
        if let Some(tenant) = &self.all {
            hub.unfollow_all(self.member.key, tenant);
        }
        hub.unlist(self.member.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChangeFeed, feed::test_event};
    use std::time::Duration;

    fn version_of(routed: &Routed) -> i64 {
        match routed {
            Routed::Change(change) => change.event.command.version,
            Routed::Reset => -1,
        }
    }

    #[test]
    fn a_subscriber_that_overflows_lags_and_nobody_else_does() {
        let feed = ChangeFeed::new(4);
        let (busy, quiet) = (Uuid::now_v7(), Uuid::now_v7());
        let mut slow = feed.subscriber();
        slow.follow_ids(&[busy]);
        let mut idle = feed.subscriber();
        idle.follow_ids(&[quiet]);
        let mut reader = feed.subscriber();
        reader.follow_ids(&[busy]);
        for version in 1..=10 {
            feed.publish(test_event("a", busy, version));
            // The reader keeps up; the slow one never reads.
            let delivery = reader.try_next().expect("no lag").expect("an item");
            assert_eq!(version_of(&delivery.item), version);
        }
        assert_eq!(slow.try_next().map(|_| ()), Err(Lagged));
        assert!(slow.member.inbox.len() <= 4, "what it missed is dropped");
        assert!(idle.try_next().expect("no lag").is_none());
        // After being told, it receives what comes next (a long-poll re-reads and goes on).
        feed.publish(test_event("a", busy, 11));
        let next = slow.try_next().expect("told once").expect("an item");
        assert_eq!(version_of(&next.item), 11);
    }

    #[test]
    fn a_horizon_is_handed_out_only_once_nothing_it_covers_is_queued() {
        let feed = ChangeFeed::new(16);
        let (x, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut subscriber = feed.subscriber();
        subscriber.follow_ids(&[x]);
        feed.advance("h0");
        feed.publish(test_event("a", x, 1));
        feed.publish(test_event("a", x, 2));
        feed.publish(test_event("a", other, 3)); // not followed: not queued, not waited for
        feed.advance("h1");
        feed.publish(test_event("a", x, 4));

        let first = subscriber.try_next().expect("no lag").expect("v1");
        assert_eq!(version_of(&first.item), 1);
        assert!(
            first.horizon.is_none(),
            "v2, covered by h1, is still queued"
        );
        let second = subscriber.try_next().expect("no lag").expect("v2");
        assert_eq!(version_of(&second.item), 2);
        let horizon = second.horizon.expect("nothing h1 covers is queued");
        assert_eq!(&**horizon.cursor(), "h1");
        let third = subscriber.try_next().expect("no lag").expect("v4");
        assert_eq!(
            third.horizon.map(|h| h.cursor().to_string()),
            Some("h1".into())
        );
        assert!(subscriber.try_next().expect("no lag").is_none());
    }

    #[test]
    fn draining_what_a_horizon_covers_stops_at_it() {
        let feed = ChangeFeed::new(16);
        let x = Uuid::now_v7();
        let mut subscriber = feed.subscriber();
        subscriber.follow_ids(&[x]);
        feed.publish(test_event("a", x, 1));
        feed.publish(test_event("a", x, 2));
        feed.advance("h1");
        feed.publish(test_event("a", x, 3));
        let horizon = feed.horizon().expect("a horizon");
        let drained: Vec<i64> =
            std::iter::from_fn(|| subscriber.next_covered_by(&horizon).expect("no lag"))
                .map(|item| version_of(&item))
                .collect();
        assert_eq!(drained, [1, 2]);
        let rest = subscriber.try_next().expect("no lag").expect("v3");
        assert_eq!(version_of(&rest.item), 3);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_for_its_changes_only() {
        let feed = ChangeFeed::new(16);
        let (x, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut subscriber = feed.subscriber();
        subscriber.follow_ids(&[x]);
        let waiting = tokio::spawn(async move {
            let delivery = subscriber.next().await.expect("no lag");
            version_of(&delivery.item)
        });
        tokio::task::yield_now().await;
        feed.publish(test_event("a", other, 1));
        feed.publish(test_event("a", x, 2));
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(got, 2);
    }
}
