//! `GET /v1/changes`, the HTTP change feed: one request follows many commands. It answers the
//! latest view of every command the caller reaches (or of `ids`) changed since its cursor, a
//! page at a time, and long-polls when nothing changed. The cursor rule is the WebSocket's
//! (`cmdbus_feed::changes_since`); a cursor it cannot serve is answered with a reset problem.

use axum::extract::State;
use cmdbus_auth::{Principal, Scope};
use cmdbus_domain::CommandView;
use cmdbus_feed::{ChangesSince, Routed, Subscriber};
use cmdbus_store::Cursor;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::ApiQuery,
    responses::{BadRequest, Forbidden, ResetGone, ResetNotServed, Unavailable},
};

/// Longest wait, in seconds.
const MAX_WAIT: u64 = 60;
/// Default and largest page.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 1_000;
/// Most ids one request names.
const MAX_IDS: usize = 1_000;
/// However quiet the feed, the database is read again this often while waiting (it is the
/// truth when neither the broker nor a tail delivers).
const RECHECK: Duration = Duration::from_secs(2);

/// Query of `GET /v1/changes`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChangesQuery {
    /// The `cursor` of your last answer (or of a `GET /v1/commands` page, a WebSocket or SSE
    /// message). Without it the answer is at once a starting point: no changes and the cursor
    /// of now.
    #[param(pattern = "^[0-9]{1,20}:[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?$")]
    since: Option<String>,
    /// Seconds to wait for a change when there is none yet.
    #[param(minimum = 0, maximum = 60, default = 0)]
    wait: Option<u64>,
    /// Only these commands: comma-separated ids, at most 1,000.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})*$",
        max_length = 36_999
    )]
    ids: Option<String>,
    /// Most commands per answer (a transaction's changes are never split, so a single larger
    /// transaction is answered whole).
    #[param(minimum = 1, maximum = 1000, default = 500)]
    limit: Option<usize>,
}

/// One answer of the change feed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangesPage {
    /// The latest view of each command changed since `since`, oldest change first.
    changes: Vec<CommandView>,
    /// Pass as `since` next time: every change it covers has been answered.
    cursor: String,
    /// More changes are waiting: ask again at once with `cursor`.
    more: bool,
}

/// The changes since a cursor.
///
/// Every change of the commands the caller reaches (or only `ids`) committed after `since`, the
/// latest view of each, oldest change first. With nothing new, waits up to `wait` seconds for a
/// change. A cursor from the future answers `409`, one that owes more than 5,000 changes `410`:
/// both carry `code: "reset"` and a fresh `cursor`; reload what you show and go on from it.
#[utoipa::path(
    get,
    path = "/v1/changes",
    operation_id = "listChanges",
    tag = "commands",
    params(ChangesQuery),
    responses(
        (status = 200, description = "The changes, and the cursor to go on from.", body = ChangesPage),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 409, response = ResetNotServed),
        (status = 410, response = ResetGone),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn changes(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<ApiJson<ChangesPage>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT {
        return Err(ApiError::InvalidQuery(format!(
            "wait must be 0 to {MAX_WAIT}"
        )));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let ids = query
        .ids
        .as_deref()
        .map(|ids| cmdbus_domain::parse_id_list(ids, MAX_IDS).map_err(ApiError::InvalidQuery))
        .transpose()?;
    let Some(since) = &query.since else {
        let now =
            cmdbus_store::changes_after(&state.pool, None, cmdbus_store::Scope::Everything, 0)
                .await?
                .cursor;
        return Ok(answer(Vec::new(), &now, false));
    };
    let mut since = Cursor::parse(since).map_err(|error| ApiError::BadCursor(error.to_string()))?;
    // A wait holds a connection and a subscription: it counts against the long-poll cap.
    let _slot = (wait > 0)
        .then(|| state.auth.long_poll(principal))
        .transpose()?;
    // Follow before reading, so that a change between the read and the wait wakes the wait.
    let mut feed = state.feed.subscriber();
    match &ids {
        Some(ids) => feed.follow_ids(ids),
        None => feed.follow_all(&principal.tenant),
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let mut ids_of_token = Vec::new();
        let scope = principal.changes_scope(
            ids.as_deref().unwrap_or_default(),
            ids.is_none(),
            &mut ids_of_token,
        );
        let reaches = |id, subject: Option<&str>| principal.reaches(id, subject);
        let read = cmdbus_feed::changes_since(
            &state.pool,
            &since,
            scope,
            limit,
            &principal.tenant,
            reaches,
        )
        .await?;
        match read {
            ChangesSince::Reset { cursor, ahead } => {
                return Err(ApiError::Reset {
                    cursor: cursor.as_str().to_owned(),
                    ahead,
                });
            }
            ChangesSince::Page {
                views,
                cursor,
                more,
            } => {
                if !views.is_empty() || more || Instant::now() >= deadline {
                    return Ok(answer(views, &cursor, more));
                }
                // Nothing in reach changed up to `cursor`: wait from there.
                since = cursor;
            }
        }
        woken(&feed, principal, (Instant::now() + RECHECK).min(deadline)).await;
    }
}

fn answer(changes: Vec<CommandView>, cursor: &Cursor, more: bool) -> ApiJson<ChangesPage> {
    ApiJson(ChangesPage {
        changes,
        cursor: cursor.as_str().to_owned(),
        more,
    })
}

/// Resolves when the feed brings a change the caller reaches (or skipped some), or at `until`.
async fn woken(feed: &Subscriber, principal: &Principal, until: Instant) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            delivery = feed.next() => match delivery.map(|delivery| delivery.item) {
                Ok(Routed::Change(change)) => {
                    let command = &change.event.command;
                    if change.event.tenant == principal.tenant
                        && principal.reaches(command.id, command.subject.as_deref())
                    {
                        return;
                    }
                }
                // Changes were skipped or dropped: read again.
                Ok(Routed::Reset) | Err(_) => return,
            },
        }
    }
}
