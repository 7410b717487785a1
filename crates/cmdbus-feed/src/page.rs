//! One answer of the HTTP change feed (`GET /v1/changes`): what changed since a client's cursor,
//! a page at a time (`cmdbus_store::changed_page`), within the bound of a resume
//! (`REPLAY_LIMIT`), each command in its latest state read as a replay reads it (`Replay`).
//! The cursor rule is the WebSocket's: a change is new to the holder of a cursor exactly as
//! there.

use cmdbus_domain::CommandView;
use cmdbus_store::{Cursor, Db, Scope, StoreError};
use uuid::Uuid;

use crate::resume::{REPLAY_LIMIT, Replay};

/// What the change feed answers a cursor.
#[derive(Debug)]
pub enum ChangesSince {
    /// The latest view of each command changed since the cursor, oldest change first.
    Page {
        /// The views (of the commands the caller reaches).
        views: Vec<CommandView>,
        /// Where to go on from once they are shown.
        cursor: Cursor,
        /// Later pages follow: ask again at once with `cursor`.
        more: bool,
    },
    /// The cursor cannot be served: reload what you show, then go on from `cursor`.
    Reset {
        /// A sound cursor to go on from.
        cursor: Cursor,
        /// The cursor was ahead of this database (from the future); otherwise it owed more
        /// than a resume replays.
        ahead: bool,
    },
}

/// The first page (at most `limit` commands, but never part of a transaction) of the commands
/// of `scope` changed since `since`, of those of `tenant` the caller `reaches`.
pub async fn changes_since(
    pool: &Db,
    since: &Cursor,
    scope: Scope<'_>,
    limit: usize,
    tenant: &str,
    reaches: impl Fn(Uuid, Option<&str>) -> bool,
) -> Result<ChangesSince, StoreError> {
    let page = cmdbus_store::changed_page(pool, since, scope, limit, REPLAY_LIMIT).await?;
    if page.truncated || page.ahead {
        return Ok(ChangesSince::Reset {
            cursor: page.now,
            ahead: page.ahead,
        });
    }
    let mut replay = Replay::of(page.ids);
    let mut views = Vec::new();
    while let Some(read) = replay.next_page(pool, tenant, &reaches).await? {
        views.extend(read);
    }
    // Pages are read in version order, each after the snapshot: keep the whole answer so.
    views.sort_by_key(|view| view.version);
    Ok(ChangesSince::Page {
        views,
        cursor: page.cursor,
        more: page.more,
    })
}
