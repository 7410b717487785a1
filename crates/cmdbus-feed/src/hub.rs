//! The change feed's routing index: which subscribers follow which command, so that a change
//! costs work only for the subscribers it goes to, never for every open socket. Bookkeeping
//! only, done under the feed's one lock: no I/O, no waiting.
//!
//! Invariants:
//! - Each change that passes de-duplication gets the next sequence number and is queued, before
//!   the lock is released, into the inbox of every subscriber that follows its id or its
//!   tenant's `all` (once, even when both). So every inbox is in sequence order, and a horizon
//!   recorded under the lock covers exactly the changes numbered up to `seq` at that moment.
//! - A subscriber is listed in `by_id[id]` while it follows `id`, in `all[tenant]` while it
//!   follows that tenant's `all`, and in `following` while it follows anything. Unfollowing
//!   removes the entry and an emptied list removes its key, so a subscriber that left leaves
//!   nothing behind.

use cmdbus_domain::Event;
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

use crate::inbox::{Change, Inbox, Routed};

/// Changes remembered for de-duplication, per generation of the map.
const RECENT: usize = 65_536;

/// The last version published per command, in two generations: a lookup sees both, and the
/// older one is dropped when the newer fills, so memory stays bounded. A duplicate older than
/// both is published again, which clients tolerate (they keep a change only if its version is
/// higher than the one they hold).
#[derive(Debug, Default)]
struct Recent {
    current: HashMap<Uuid, i64>,
    previous: HashMap<Uuid, i64>,
}

impl Recent {
    /// Whether `version` of `id` (or a later one) was published already.
    fn has(&self, id: Uuid, version: i64) -> bool {
        self.current
            .get(&id)
            .or_else(|| self.previous.get(&id))
            .is_some_and(|&seen| seen >= version)
    }

    /// Records `version` of `id`; false when it (or a later one) was published already.
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

/// One subscriber as the index lists it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) key: u64,
    pub(crate) inbox: Arc<Inbox>,
}

/// The members of one list, in no particular order (a change is queued for all of them under
/// one lock, so their order is no one's).
type Members = Vec<Member>;

/// The routing index and the sequence numbers of the change feed.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    recent: Recent,
    /// The number of the latest change (or reset) queued.
    seq: u64,
    by_id: HashMap<Uuid, Members>,
    all: HashMap<Arc<str>, Members>,
    /// Every subscriber that follows something: those a reset goes to.
    following: HashMap<u64, Arc<Inbox>>,
}

impl Hub {
    /// The number of the latest change queued: a horizon recorded now covers up to it.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether `version` of `id` (or a later one) was published already.
    pub(crate) fn published(&self, id: Uuid, version: i64) -> bool {
        self.recent.has(id, version)
    }

    /// Queues `event` for every subscriber that follows it, unless it (or a later change of
    /// the same command) was published already. Returns whether it was new.
    pub(crate) fn publish(&mut self, event: Event) -> bool {
        if !self.recent.record(event.command.id, event.command.version) {
            return false;
        }
        self.seq += 1;
        let by_id = self.by_id.get(&event.command.id);
        let all = self.all.get(event.tenant.as_str());
        if by_id.is_none() && all.is_none() {
            return true; // nobody follows it: nothing to build
        }
        let change = Arc::new(Change::new(event));
        for member in by_id.into_iter().chain(all).flatten() {
            member
                .inbox
                .push(self.seq, Routed::Change(Arc::clone(&change)));
        }
        true
    }

    /// Queues a reset for every subscriber that follows something.
    pub(crate) fn reset(&mut self) {
        self.seq += 1;
        for inbox in self.following.values() {
            inbox.push(self.seq, Routed::Reset);
        }
    }

    /// Routes the changes of `id` to `member` too.
    pub(crate) fn follow_id(&mut self, member: &Member, id: Uuid) {
        self.by_id.entry(id).or_default().push(member.clone());
        self.following.insert(member.key, Arc::clone(&member.inbox));
    }

    /// Routes every change of `tenant` to `member` too.
    pub(crate) fn follow_all(&mut self, member: &Member, tenant: &Arc<str>) {
        self.all
            .entry(Arc::clone(tenant))
            .or_default()
            .push(member.clone());
        self.following.insert(member.key, Arc::clone(&member.inbox));
    }

    /// Stops routing the changes of `id` to the member `key`.
    pub(crate) fn unfollow_id(&mut self, key: u64, id: Uuid) {
        if let Some(members) = self.by_id.get_mut(&id) {
            members.retain(|member| member.key != key);
            if members.is_empty() {
                self.by_id.remove(&id);
            }
        }
    }

    /// Stops routing every change of `tenant` to the member `key`.
    pub(crate) fn unfollow_all(&mut self, key: u64, tenant: &str) {
        if let Some(members) = self.all.get_mut(tenant) {
            members.retain(|member| member.key != key);
            if members.is_empty() {
                self.all.remove(tenant);
            }
        }
    }

    /// The member `key` follows nothing any more: no reset goes to it.
    pub(crate) fn unlist(&mut self, key: u64) {
        self.following.remove(&key);
    }
}

#[cfg(test)]
impl Hub {
    /// Entries of the index: ids, tenants with `all` followers, subscribers listed for resets.
    fn entries(&self) -> (usize, usize, usize) {
        (self.by_id.len(), self.all.len(), self.following.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChangeFeed, Routed, Subscriber, feed::test_event};

    fn ids(subscriber: &Subscriber) -> Vec<Uuid> {
        std::iter::from_fn(|| subscriber.try_next().expect("no lag"))
            .filter_map(|delivery| match delivery.item {
                Routed::Change(change) => Some(change.event.command.id),
                Routed::Reset => None,
            })
            .collect()
    }

    #[test]
    fn a_change_is_published_once_and_memory_stays_bounded() {
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

    #[test]
    fn a_change_goes_only_to_the_subscribers_that_follow_it_once_each() {
        let feed = ChangeFeed::new(16);
        let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
        let mut by_x = feed.subscriber();
        by_x.follow_ids(&[x]);
        let mut by_y = feed.subscriber();
        by_y.follow_ids(&[y]);
        let mut all_a = feed.subscriber();
        all_a.follow_all("a");
        let mut all_b = feed.subscriber();
        all_b.follow_all("b");
        let mut both = feed.subscriber();
        both.follow_ids(&[x]);
        both.follow_all("a");
        let idle = feed.subscriber();

        assert!(feed.publish(test_event("a", x, 1)));
        assert!(!feed.publish(test_event("a", x, 1)), "a duplicate");
        assert_eq!(ids(&by_x), [x]);
        assert_eq!(ids(&all_a), [x]);
        assert_eq!(ids(&both), [x], "routed by id and by all, queued once");
        assert!(ids(&by_y).is_empty());
        assert!(ids(&all_b).is_empty(), "`all` is per tenant");
        assert!(ids(&idle).is_empty());

        // Another tenant's change of a followed id is routed (the subscriber checks the tenant).
        feed.publish(test_event("b", y, 2));
        assert_eq!(ids(&by_y), [y]);
        assert_eq!(ids(&all_b), [y]);
        assert!(ids(&all_a).is_empty());
    }

    #[test]
    fn unfollowing_and_dropping_leave_nothing_in_the_index() {
        let feed = ChangeFeed::new(16);
        let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
        let mut one = feed.subscriber();
        one.follow_ids(&[x, y]);
        one.follow_all("a");
        let mut two = feed.subscriber();
        two.follow_ids(&[x]);
        two.follow_all("a");
        assert_eq!(feed.hub().entries(), (2, 1, 2));

        one.unfollow_ids(&[x, y]);
        assert_eq!(feed.hub().entries(), (1, 1, 2), "one still follows all");
        one.unfollow_all();
        assert_eq!(feed.hub().entries(), (1, 1, 1));
        feed.publish(test_event("a", x, 1));
        assert!(ids(&one).is_empty());
        assert_eq!(ids(&two), [x]);

        // A tenant switch moves `all`; dropping removes every entry.
        two.follow_all("b");
        assert_eq!(feed.hub().entries(), (1, 1, 1));
        drop(two);
        assert_eq!(feed.hub().entries(), (0, 0, 0));
        drop(one);
        assert_eq!(feed.hub().entries(), (0, 0, 0));

        // Many subscribers come and go: nothing is left behind.
        let many: Vec<Subscriber> = (0..1_000)
            .map(|n| {
                let mut subscriber = feed.subscriber();
                if n % 2 == 0 {
                    subscriber.follow_ids(&[Uuid::now_v7()]);
                } else {
                    subscriber.follow_all(&format!("tenant{}", n % 7));
                }
                subscriber
            })
            .collect();
        assert_eq!(feed.hub().entries(), (500, 7, 1_000));
        drop(many);
        assert_eq!(feed.hub().entries(), (0, 0, 0));
    }

    #[test]
    fn a_reset_goes_to_every_subscriber_that_follows_something() {
        let feed = ChangeFeed::new(16);
        let mut by_id = feed.subscriber();
        by_id.follow_ids(&[Uuid::now_v7()]);
        let mut all = feed.subscriber();
        all.follow_all("a");
        let idle = feed.subscriber();
        feed.reset();
        for subscriber in [&by_id, &all] {
            let delivery = subscriber.try_next().expect("no lag").expect("an item");
            assert!(matches!(delivery.item, Routed::Reset));
        }
        assert!(idle.try_next().expect("no lag").is_none());
    }
}
