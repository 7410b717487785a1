//! A connection's `subscribe`: follow the commands in the change feed first, then replay what
//! the client missed since its cursor, then answer `subscribed` with a cursor that is sound for
//! everything it now follows.

use cmdbus_auth::{Principal, Reach};
use cmdbus_store::{Cursor, Scope};
use std::sync::Arc;
use uuid::Uuid;

use super::{Closed, Connection, HORIZON_WAIT, REPLAY_LIMIT, REPLAY_PAGE, TOO_SLOW};
use crate::protocol::{MAX_IDS_PER_CONNECTION, MAX_IDS_PER_MESSAGE, Selector, ServerMessage};

impl Connection {
    pub(super) async fn subscribe(&mut self, selector: Selector) -> Result<(), Closed> {
        if !selector.all && selector.ids.is_empty() {
            return self
                .send_error("bad_request", "name `ids` or `all: true`".to_owned())
                .await;
        }
        if selector.ids.len() > MAX_IDS_PER_MESSAGE
            || self.subscriber.id_count() + selector.ids.len() > MAX_IDS_PER_CONNECTION
        {
            return self
                .send_error("too_many_ids", format!("at most {MAX_IDS_PER_MESSAGE} ids per message and {MAX_IDS_PER_CONNECTION} per connection"))
                .await;
        }
        let since = match &selector.since {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => match Cursor::parse(text) {
                Ok(cursor) => Some(cursor),
                Err(error) => return self.send_error("bad_cursor", error.to_string()).await,
            },
            Some(_) => {
                return self
                    .send_error(
                        "bad_cursor",
                        "`since` takes a cursor string this server sent".to_owned(),
                    )
                    .await;
            }
        };
        if self.state.feed.horizon().is_none() {
            let feed = self.state.feed.clone();
            let _ = tokio::time::timeout(HORIZON_WAIT, feed.wait_horizon()).await;
        }
        let Some(principal) = self.access.principal().cloned() else {
            return Ok(()); // only an authenticated connection gets here
        };
        if self.state.feed.horizon().is_none() {
            return self
                .send_error(
                    "unavailable",
                    "the status database is unavailable".to_owned(),
                )
                .await;
        }
        // Follow before anything is read: from here on every change of these commands is queued
        // for this connection, so the replay below, which reads a later snapshot, can only
        // overlap with them (the duplicates are dropped), never leave a gap.
        if selector.all {
            self.subscriber.follow_all(&principal.tenant);
        }
        self.subscriber.follow_ids(&selector.ids);
        if let Some(since) = since {
            let tenant = principal.tenant.as_str();
            let reach: Vec<Uuid>;
            let scope = match (&principal.reach, selector.all) {
                (_, false) => Scope::Ids(tenant, &selector.ids),
                (Reach::Tenant, true) => Scope::Tenant(tenant),
                (Reach::Subject(subject), true) => Scope::Subject(tenant, subject),
                (Reach::Ids(ids), true) => {
                    reach = ids.iter().copied().collect();
                    Scope::Ids(tenant, &reach)
                }
            };
            self.replay(&since, scope, &principal).await?;
        }
        self.confirm().await
    }

    /// Answers `subscribed` with the latest horizon, once every change it covers that is still
    /// queued for this connection has been sent (without a cursor: the client's own stays valid
    /// until this answer).
    async fn confirm(&mut self) -> Result<(), Closed> {
        let Some(horizon) = self.state.feed.horizon() else {
            return Ok(()); // checked by the caller; a feed never loses its horizon
        };
        while let Some(item) = self
            .subscriber
            .next_covered_by(&horizon)
            .map_err(|_| TOO_SLOW)?
        {
            self.deliver(item, false).await?;
        }
        let cursor = Arc::clone(horizon.cursor());
        self.cursor = Some(Arc::clone(&cursor));
        self.sent_cursor = Some(Arc::clone(&cursor));
        self.send_json(&ServerMessage::Subscribed { cursor: &cursor })
            .await
    }

    /// Sends the latest state of every matching command changed since `since`, a page at a
    /// time. A page read after the snapshot may hold a later state of a command: sending it
    /// early is harmless, the client keeps the higher version and the live duplicate is dropped.
    async fn replay(
        &mut self,
        since: &Cursor,
        scope: Scope<'_>,
        principal: &Principal,
    ) -> Result<(), Closed> {
        // Better no socket than a socket with a silent gap: the client resumes.
        let failed = |error: cmdbus_store::StoreError| {
            tracing::warn!(%error, "cannot replay");
            Closed::Close(1011, "cannot replay; resume with since")
        };
        let changed = cmdbus_store::changed_ids_after(&self.state.pool, since, scope, REPLAY_LIMIT)
            .await
            .map_err(failed)?;
        if changed.truncated {
            return self.send_reset().await;
        }
        for page in changed.ids.chunks(REPLAY_PAGE) {
            let rows = cmdbus_store::get_many(&self.state.pool, &principal.tenant, page)
                .await
                .map_err(failed)?;
            for row in &rows {
                if !principal.reaches(row.id, row.subject.as_deref()) {
                    continue;
                }
                let view = row.view();
                self.replayed.versions.insert(view.id, view.version);
                // Replayed changes carry no cursor: the client's own stays valid until the end.
                self.send_json(&ServerMessage::Command {
                    command: &view,
                    cursor: None,
                })
                .await?;
            }
        }
        self.replayed.at = self
            .state
            .feed
            .horizon()
            .map_or(0, |horizon| horizon.number());
        Ok(())
    }
}
