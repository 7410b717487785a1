//! A connection's `subscribe`: the feed's resume rule, step by step (`cmdbus_feed::resume`),
//! with this connection's sends in between: follow first, replay what the client missed since
//! its cursor, then answer `subscribed` with a cursor sound for everything it now follows.

use cmdbus_auth::Principal;
use cmdbus_feed::{Replay, parse_since};
use cmdbus_store::{Cursor, Scope};

use super::{Closed, Connection, TOO_SLOW};
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
        let since = match parse_since(selector.since.as_ref()) {
            Ok(since) => since,
            Err(error) => return self.send_error("bad_cursor", error.to_string()).await,
        };
        let ready = self.state.feed.ready().await;
        let Some(principal) = self.access.principal().cloned() else {
            return Ok(()); // only an authenticated connection gets here
        };
        if !ready {
            return self
                .send_error(
                    "unavailable",
                    "the status database is unavailable".to_owned(),
                )
                .await;
        }
        // At most as many ids as this subscribe may add, within the shares of the tenant and
        // the subject (`cmdbus_auth::Shares`); what it does add is counted once it follows.
        let most = self.subscriber.id_count() + selector.ids.len();
        if let Err(refused) = self.access.hold_ids(most) {
            return self.send_error("too_many_ids", refused.to_string()).await;
        }
        // Follow before anything is read: from here on every change of these commands is queued
        // for this connection, so the replay below, which reads a later snapshot, can only
        // overlap with them (the duplicates are dropped), never leave a gap.
        if selector.all {
            self.subscriber.follow_all(&principal.tenant);
        }
        self.subscriber.follow_ids(&selector.ids);
        let _ = self.access.hold_ids(self.subscriber.id_count()); // fewer never fail
        if let Some(since) = since {
            let mut ids_of_token = Vec::new();
            let scope = principal.changes_scope(&selector.ids, selector.all, &mut ids_of_token);
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
        let cursor = self.position.confirm(&horizon);
        self.send_json(&ServerMessage::Subscribed { cursor: &cursor })
            .await
    }

    /// Sends the latest state of every matching command changed since `since`, a page at a
    /// time (`Replay`), or a reset when it owes more than a resume replays.
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
        let Some(mut replay) = Replay::owed(&self.state.pool, since, scope)
            .await
            .map_err(failed)?
        else {
            return self.send_reset().await;
        };
        let reaches = |id, subject: Option<&str>| principal.reaches(id, subject);
        while let Some(views) = replay
            .next_page(&self.state.pool, &principal.tenant, reaches)
            .await
            .map_err(failed)?
        {
            for view in &views {
                self.position.replaying(view);
                // Replayed changes carry no cursor: the client's own stays valid until the end.
                self.send_json(&ServerMessage::Command {
                    command: view,
                    cursor: None,
                })
                .await?;
            }
        }
        self.position.replay_ended(&self.state.feed);
        Ok(())
    }
}
