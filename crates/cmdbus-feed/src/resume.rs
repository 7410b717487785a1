//! The resume rule, for one client of the feed (a WebSocket connection or an SSE stream; the
//! HTTP change feed pages through `page.rs`, within the same bound): how a `since` is read, what a resume replays, which
//! cursor a client may be handed and when. The transport only sends what this says; the crate
//! doc states the invariant these steps keep.
//!
//! The steps, in order: wait until the feed has a horizon (`ready`); follow the commands in the
//! feed (`Subscriber::follow_*`) before anything is read; replay what changed since the
//! client's cursor (`Replay`), recording each version sent (`Position::replaying`); drain what
//! the latest horizon covers (`Subscriber::next_covered_by`) and answer with that horizon
//! (`Position::confirm`); then hand out each later horizon that a popped item carries
//! (`Position::advance`) with the next change that leaves (`Position::cursor_to_send`).

use cmdbus_domain::CommandView;
use cmdbus_store::{Cursor, Db, InvalidCursor, Scope, StoreError};
use std::{collections::HashMap, sync::Arc, time::Duration};
use uuid::Uuid;

use crate::{feed::ChangeFeed, shared::Horizon};

/// Most changes one resume replays; past it the client is told to reload (`reset`).
pub(crate) const REPLAY_LIMIT: i64 = 5_000;

/// Commands a replay reads at once: a page of whole rows (payloads and results of up to a few
/// hundred KiB each) is what a resume holds, not every row it owes.
const REPLAY_PAGE: usize = 64;

/// How long a subscribe waits for the feed's first horizon (the process just started).
const HORIZON_WAIT: Duration = Duration::from_secs(5);

/// A `since` this server cannot read.
#[derive(Debug, thiserror::Error)]
pub enum BadSince {
    /// A string that is not a cursor this server handed out.
    #[error(transparent)]
    Invalid(#[from] InvalidCursor),
    /// Not a string at all.
    #[error("`since` takes a cursor string this server sent")]
    NotAString,
}

/// Reads a client's `since`: absent or `null` asks for no resume.
pub fn parse_since(since: Option<&serde_json::Value>) -> Result<Option<Cursor>, BadSince> {
    match since {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(Cursor::parse(text)?)),
        Some(_) => Err(BadSince::NotAString),
    }
}

impl ChangeFeed {
    /// Whether the feed has a horizon, waiting a little for its first one (its database reader
    /// just started). Without one, no cursor can be answered: the status database is away.
    pub async fn ready(&self) -> bool {
        if self.horizon().is_none() {
            let _ = tokio::time::timeout(HORIZON_WAIT, self.wait_horizon()).await;
        }
        self.horizon().is_some()
    }
}

/// What one resume owes a client: the ids of the commands changed since its cursor, read in one
/// snapshot, whose latest state it is sent a page at a time.
#[derive(Debug)]
pub struct Replay {
    ids: Vec<Uuid>,
    /// How many of `ids` were read already.
    read: usize,
}

impl Replay {
    /// The commands of `scope` changed since `since`; `None` when there are more than a resume
    /// replays, or `since` is ahead of the database (never handed out by it): the client must
    /// reload (`reset`) instead.
    pub async fn owed(
        pool: &Db,
        since: &Cursor,
        scope: Scope<'_>,
    ) -> Result<Option<Self>, StoreError> {
        let changed = cmdbus_store::changed_ids_after(pool, since, scope, REPLAY_LIMIT).await?;
        Ok((!changed.truncated && !changed.ahead).then_some(Self::of(changed.ids)))
    }

    /// A replay of these commands' latest states.
    pub(crate) fn of(ids: Vec<Uuid>) -> Self {
        Self { ids, read: 0 }
    }

    /// The next page of views owed, of the commands of `tenant` the client `reaches`; `None`
    /// once all are read. A page read after the snapshot may hold a later state of a command:
    /// sending it early is harmless, the client keeps the higher version and the live
    /// duplicate is dropped (`Position::replayed`).
    pub async fn next_page(
        &mut self,
        pool: &Db,
        tenant: &str,
        reaches: impl Fn(Uuid, Option<&str>) -> bool,
    ) -> Result<Option<Vec<CommandView>>, StoreError> {
        let Some(page) = self.ids.get(self.read..).filter(|rest| !rest.is_empty()) else {
            return Ok(None);
        };
        let page = &page[..page.len().min(REPLAY_PAGE)];
        self.read += page.len();
        let rows = cmdbus_store::get_many(pool, tenant, page).await?;
        Ok(Some(
            rows.iter()
                .filter(|row| reaches(row.id, row.subject.as_deref()))
                .map(|row| row.view())
                .collect(),
        ))
    }
}

/// What the last replay sent, to drop the live duplicates queued while it ran.
#[derive(Debug, Default)]
struct Replayed {
    /// The version sent per command.
    versions: HashMap<Uuid, i64>,
    /// The feed's horizon number when the replay ended. Two horizons later, the database reader
    /// has published every change the replay's snapshot held: no duplicate is left to drop.
    at: u64,
}

/// One client's position in the feed, in cursor terms.
#[derive(Debug, Default)]
pub struct Position {
    /// The latest horizon this client may be handed: every change it covers that the client
    /// follows has been sent.
    cursor: Option<Arc<str>>,
    /// The cursor last sent to the client.
    sent: Option<Arc<str>>,
    replayed: Replayed,
}

impl Position {
    /// A popped item carried `horizon` (nothing it covers is queued behind it): once that item
    /// is sent, `horizon` is a cursor the client may be handed.
    pub fn advance(&mut self, horizon: &Horizon) {
        self.expire(horizon.number());
        self.cursor = Some(Arc::clone(horizon.cursor()));
    }

    /// The feed's horizon reached `number`: forgets the last replay once two past its end.
    pub fn expire(&mut self, number: u64) {
        let replayed = &mut self.replayed;
        if !replayed.versions.is_empty() && number >= replayed.at + 2 {
            replayed.versions = HashMap::new();
        }
    }

    /// Records a view the replay sends.
    pub fn replaying(&mut self, view: &CommandView) {
        self.replayed.versions.insert(view.id, view.version);
    }

    /// The replay ended while the feed's horizon was at `feed`'s latest.
    pub fn replay_ended(&mut self, feed: &ChangeFeed) {
        self.replayed.at = feed.horizon().map_or(0, |horizon| horizon.number());
    }

    /// Whether `version` of `id` (or a later one) was sent by the last replay: the live change
    /// is a duplicate.
    pub fn replayed(&self, id: Uuid, version: i64) -> bool {
        self.replayed
            .versions
            .get(&id)
            .is_some_and(|&replayed| replayed >= version)
    }

    /// The cursor a live change carries: the client's, when it moved since it was last sent
    /// (and `with_cursor`: replayed and pre-`subscribed` changes carry none). Once the change
    /// is sent, say so with `sent`.
    pub fn cursor_to_send(&self, with_cursor: bool) -> Option<Arc<str>> {
        self.cursor
            .clone()
            .filter(|cursor| with_cursor && self.sent.as_ref() != Some(cursor))
    }

    /// `cursor` reached the client.
    pub fn sent(&mut self, cursor: Arc<str>) {
        self.sent = Some(cursor);
    }

    /// The cursor a reset carries: the latest the client may have or, before its first
    /// `subscribed`, the feed's (that answer follows and carries its own). Once the reset is
    /// sent, say so with `sent`.
    pub fn reset_cursor(&self, feed: &ChangeFeed) -> Arc<str> {
        self.cursor
            .clone()
            .or_else(|| feed.horizon().map(|horizon| Arc::clone(horizon.cursor())))
            .unwrap_or_else(|| Arc::from(""))
    }

    /// Answers a subscribe with `horizon`, once every item it covers that is still queued for
    /// this client was delivered: the cursor the client is sent now.
    pub fn confirm(&mut self, horizon: &Horizon) -> Arc<str> {
        let cursor = Arc::clone(horizon.cursor());
        self.cursor = Some(Arc::clone(&cursor));
        self.sent = Some(Arc::clone(&cursor));
        cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::test_event;

    #[test]
    fn since_is_a_cursor_string_or_nothing() {
        let parse = |value: serde_json::Value| parse_since(Some(&value));
        assert!(matches!(parse_since(None), Ok(None)));
        assert!(matches!(parse(serde_json::Value::Null), Ok(None)));
        assert!(matches!(parse(serde_json::json!("812:815:")), Ok(Some(_))));
        assert!(matches!(
            parse(serde_json::json!("7")),
            Err(BadSince::Invalid(_))
        ));
        let not_a_string = parse(serde_json::json!(7)).map(|_| ());
        assert_eq!(
            not_a_string.map_err(|error| error.to_string()),
            Err("`since` takes a cursor string this server sent".to_owned())
        );
    }

    #[test]
    fn a_cursor_goes_out_once_each_time_it_moves() {
        let feed = ChangeFeed::new(16);
        let mut position = Position::default();
        assert_eq!(&*position.reset_cursor(&feed), "", "no horizon yet");
        feed.advance("1:1:");
        assert_eq!(
            &*position.reset_cursor(&feed),
            "1:1:",
            "the feed's, before subscribed"
        );
        let first = feed.horizon().expect("a horizon");
        assert_eq!(&*position.confirm(&first), "1:1:");
        assert_eq!(position.cursor_to_send(true), None, "subscribed carried it");

        feed.advance("2:2:");
        position.advance(&feed.horizon().expect("a horizon"));
        assert_eq!(
            position.cursor_to_send(false),
            None,
            "replayed changes carry none"
        );
        let moved = position.cursor_to_send(true).expect("it moved");
        assert_eq!(&*moved, "2:2:");
        position.sent(moved);
        assert_eq!(position.cursor_to_send(true), None);
        assert_eq!(&*position.reset_cursor(&feed), "2:2:");
    }

    #[test]
    fn a_replayed_change_is_dropped_live_until_two_horizons_later() {
        let feed = ChangeFeed::new(16);
        let mut position = Position::default();
        feed.advance("1:1:");
        let command = test_event("a", Uuid::now_v7(), 5).command;
        position.replaying(&command);
        position.replay_ended(&feed);
        assert!(position.replayed(command.id, 5));
        assert!(position.replayed(command.id, 4));
        assert!(!position.replayed(command.id, 6), "a later change is new");
        position.expire(2);
        assert!(position.replayed(command.id, 5), "one horizon later");
        position.expire(3);
        assert!(
            !position.replayed(command.id, 5),
            "forgotten two horizons later"
        );
    }
}
