//! What operators do to commands: replay failed ones (one or in bulk) and cancel (one; in bulk
//! in `bulk.rs`; discard in `discard.rs`).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{Principal, Reach, Scope};
use cmdbus_domain::CommandView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState, audit,
    auth::Caller,
    dispatch::dispatch,
    extract::{PathId, parse_id},
    fields::{check_name, integer, nullable_name_schema},
    responses::{
        BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unavailable,
        UnprocessableEntity, UnsupportedMediaType,
    },
    submit::publish_now,
};

/// The operator's command, checked to be within its reach before anything changes: another
/// tenant's id, or one outside a token's subject or ids, is `404` (a subject never changes, so
/// the check cannot go stale).
async fn reachable(
    state: &ApiState,
    principal: &Principal,
    id: uuid::Uuid,
) -> Result<cmdbus_store::CommandRow, ApiError> {
    cmdbus_store::get(&state.pool, &principal.tenant, id)
        .await?
        .filter(|row| principal.reaches(row.id, row.subject.as_deref()))
        .ok_or(ApiError::NotFound)
}

/// Refuses, before anything changes, a command outside a token's subject or ids. A key reaches
/// its whole tenant, and the change itself is scoped by tenant: it needs no read first.
pub(crate) async fn check_reach(
    state: &ApiState,
    principal: &Principal,
    id: uuid::Uuid,
) -> Result<(), ApiError> {
    if principal.reach == Reach::Tenant {
        return Ok(());
    }
    reachable(state, principal, id).await.map(drop)
}

/// Why an operation is refused, when the command exists.
pub(crate) async fn refusal(
    state: &ApiState,
    principal: &Principal,
    id: uuid::Uuid,
    verb: &str,
) -> ApiError {
    match reachable(state, principal, id).await {
        Ok(row) => ApiError::Conflict(format!("cannot {verb} a command in state {}", row.status)),
        Err(error) => error,
    }
}

pub(crate) fn accepted(row: &cmdbus_store::CommandRow) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, ApiJson(row.view())).into_response())
}

/// Replay a failed or cancelled command.
///
/// It runs again as a new generation, with a fresh attempt budget; copies of its old messages
/// claim nothing.
#[utoipa::path(
    post,
    path = "/v1/commands/{id}/retry",
    operation_id = "retryCommand",
    tag = "operate",
    params(("id" = uuid::Uuid, Path, description = "The command's id.")),
    responses(
        (status = 202, description = "Back in the queue.", body = CommandView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn retry(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Operate)?;
    let id = parse_id(&id)?;
    check_reach(&state, principal, id).await?;
    // A replay makes a finished command unfinished again: it counts like a submit.
    state.quota.admit(principal, 1).await?;
    let Some(row) = cmdbus_store::replay(&state.pool, &principal.tenant, id).await? else {
        return Err(refusal(&state, principal, id, "retry").await);
    };
    state.broker.announce([row.event()]).await;
    let row = publish_now(&state, row).await;
    accepted(&row)
}

/// Cancel a command.
///
/// One that has not started (`new`, `queue`) is `cancelled` at once; a `running` one is asked to
/// stop, and ends `cancelled` when its handler does.
#[utoipa::path(
    post,
    path = "/v1/commands/{id}/cancel",
    operation_id = "cancelCommand",
    tag = "operate",
    params(("id" = uuid::Uuid, Path, description = "The command's id.")),
    responses(
        (status = 202, description = "Cancelled, or cancel requested.", body = CommandView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Operate)?;
    let id = parse_id(&id)?;
    check_reach(&state, principal, id).await?;
    let Some(row) = cmdbus_store::cancel(&state.pool, &principal.tenant, id).await? else {
        return Err(refusal(&state, principal, id, "cancel").await);
    };
    state.broker.announce([row.event()]).await;
    if row.status == cmdbus_domain::Status::Running {
        // The worker's heartbeat would see the request too, but only within a third of a lease.
        let control = cmdbus_domain::Control::Cancel {
            id,
            generation: row.generation,
        };
        if let Err(error) = state.broker.publish_control(&control).await {
            tracing::warn!(%error, %id, "cancel not broadcast; the heartbeat will deliver it");
        }
    }
    accepted(&row)
}

/// Commands a bulk replay reads, replays and publishes at once: what one request holds.
const RETRY_PAGE: i64 = 200;

/// `POST /v1/commands/retry` body: which failed commands to replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryMatching {
    /// Only this type.
    #[serde(rename = "type")]
    #[schema(schema_with = kind_filter)]
    kind: Option<String>,
    /// Only failures with this error code.
    #[schema(schema_with = error_code_filter)]
    error_code: Option<String>,
    /// Only failures finished at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only failures finished before this time. A dry run answers the bound it counted with:
    /// send it back with the action.
    until: Option<DateTime<Utc>>,
    /// Replay at most this many: send the dry run's `matched`, so that the action never takes
    /// more than the preview counted.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0)]
    limit: Option<i64>,
    /// Count, change nothing.
    #[serde(default)]
    #[schema(default = false)]
    dry_run: bool,
}

/// How many matched, and how many were replayed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetryCount {
    /// Failed commands that match.
    #[schema(minimum = 0)]
    matched: i64,
    /// Replayed now (0 on a dry run); at most `matched` and `limit`, fewer when some changed
    /// meanwhile.
    #[schema(minimum = 0)]
    retried: i64,
    /// The bound counted with (the request's `until`, or the database's time of the count):
    /// send it with the action.
    until: DateTime<Utc>,
}

/// What a bulk action over the whole tenant starts from: the caller, allowed to operate on every
/// command of its tenant, and the bound of the count. Without a bound, commands that land
/// between the count and the action would be acted on too ("preview 10, retried 11"): the
/// count's time is the bound, and the answer says it.
pub(crate) struct Bulk {
    pub(crate) principal: cmdbus_auth::Principal,
    pub(crate) until: DateTime<Utc>,
}

impl Bulk {
    /// Checks the caller (`operate`, over its whole tenant: a browser token is refused), the
    /// filter's `type` and `error_code` names and the `limit`; `until` is the request's, or now.
    pub(crate) async fn check(
        state: &ApiState,
        caller: &Caller,
        [kind, error_code]: [Option<&str>; 2],
        limit: Option<i64>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Self, ApiError> {
        let principal = caller.require(Scope::Operate)?;
        if principal.reach != Reach::Tenant {
            return Err(cmdbus_auth::AuthError::Forbidden("operate (on the whole tenant)").into());
        }
        for (field, value) in [("type", kind), ("error_code", error_code)] {
            if let Some(value) = value {
                check_name(field, value)?;
            }
        }
        if limit.is_some_and(|limit| limit < 0) {
            return Err(ApiError::InvalidField {
                field: "limit",
                reason: "must be 0 or more".to_owned(),
            });
        }
        let until = match until {
            Some(until) => until,
            None => cmdbus_store::database_time(&state.pool).await?,
        };
        Ok(Self {
            principal: principal.clone(),
            until,
        })
    }

    /// Refuses a selection of more than `MAX_IDS` commands.
    pub(crate) fn check_ids(ids: &[Uuid]) -> Result<(), ApiError> {
        if ids.len() > MAX_IDS {
            return Err(ApiError::InvalidField {
                field: "ids",
                reason: format!("at most {MAX_IDS}"),
            });
        }
        Ok(())
    }

    /// Acts on what the count `matched` found, at most `limit` of it (the dry run's count, sent
    /// back), a page of `BULK_PAGE` at a time: `page(after, limit)` changes the next page of
    /// rows past id `after` and returns them as they are now; each page is announced. Returns
    /// how many rows changed: fewer than bound when some changed meanwhile.
    pub(crate) async fn in_pages<F, Fut>(
        state: &ApiState,
        matched: i64,
        limit: Option<i64>,
        mut page: F,
    ) -> Result<i64, ApiError>
    where
        F: FnMut(Option<Uuid>, i64) -> Fut,
        Fut: Future<Output = Result<Vec<cmdbus_store::CommandRow>, ApiError>>,
    {
        let bound = limit.map_or(matched, |limit| limit.min(matched));
        let mut changed = 0;
        let mut after = None;
        while changed < bound {
            let rows = page(after, (bound - changed).min(BULK_PAGE)).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some(last.id);
            changed += rows.len() as i64;
            state
                .broker
                .announce(rows.iter().map(cmdbus_store::CommandRow::event))
                .await;
        }
        Ok(changed)
    }
}

/// The most commands a bulk action's selection (`ids`) names.
pub(crate) const MAX_IDS: usize = 1000;

/// Rows a bulk cancel or discard changes per statement: each page is one conditional statement,
/// so no action holds a million rows' locks (or memory) at once.
const BULK_PAGE: i64 = 200;

/// Replay failed commands in bulk.
///
/// Every failed command that matches runs again as a new generation; `dry_run` only counts,
/// and answers `until`: the action sent with that `until` and the count as `limit` replays no
/// more than the preview counted, however many fail meanwhile. Recorded in the audit trail
/// (`GET /v1/audit`). They count against the tenant's quota of unfinished commands: when they do not all fit,
/// none is replayed (`429 quota_exceeded`).
#[utoipa::path(
    post,
    path = "/v1/commands/retry",
    operation_id = "retryCommands",
    tag = "operate",
    request_body = RetryMatching,
    responses(
        (status = 200, description = "How many matched and were replayed.", body = RetryCount),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn retry_matching(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<RetryMatching>,
) -> Result<ApiJson<RetryCount>, ApiError> {
    let Bulk { principal, until } = Bulk::check(
        &state,
        &caller,
        [request.kind.as_deref(), request.error_code.as_deref()],
        request.limit,
        request.until,
    )
    .await?;
    let filter = cmdbus_store::FailedFilter {
        tenant: &principal.tenant,
        kind: request.kind.as_deref(),
        error_code: request.error_code.as_deref(),
        since: request.since,
        until: Some(until),
    };
    let matched = cmdbus_store::count_failed(&state.pool, &filter).await?;
    if request.dry_run {
        return Ok(ApiJson(RetryCount {
            matched,
            retried: 0,
            until,
        }));
    }
    let bound = request.limit.map_or(matched, |limit| limit.min(matched));
    // Every replayed command is unfinished again: all of them fit in the tenant's quota, or
    // none is replayed (`429 quota_exceeded`; narrow the filter, or let work finish).
    state.quota.admit(&principal, bound).await?;
    // A page of ids at a time, each page replayed in one statement and published before the
    // next is read: whatever a tenant has failed, one page is all this request holds. Never
    // more than were counted against the quota, though more may fail meanwhile.
    let mut retried = 0;
    let mut after = None;
    while retried < bound {
        let limit = (bound - retried).min(RETRY_PAGE);
        let ids = cmdbus_store::failed_ids_after(&state.pool, &filter, after, limit).await?;
        let Some(&last) = ids.last() else {
            break;
        };
        after = Some(last);
        let rows = cmdbus_store::replay_failed(&state.pool, &filter, &ids).await?;
        retried += rows.len() as i64;
        state
            .broker
            .announce(rows.iter().map(cmdbus_store::CommandRow::event))
            .await;
        // The replay is committed: rows not confirmed now, or not marked `queue` (the statement
        // failed — a deadlock with a worker's claim, say), stay `new` and the relay publishes
        // them, as it does for a submit's batch. The answer counts them all the same.
        if let Err(error) = dispatch(
            &state.pool,
            &state.broker,
            state.config.redeliver_after,
            rows,
        )
        .await
        {
            tracing::warn!(%error, "replayed, but not all published; the relay will");
        }
    }
    let recorded = json!({
        "type": request.kind,
        "error_code": request.error_code,
        "since": request.since,
        "until": until,
        "limit": request.limit,
    });
    audit::record(&state, &principal, "retry", &recorded, retried).await;
    Ok(ApiJson(RetryCount {
        matched,
        retried,
        until,
    }))
}

// A field whose schema comes from a function loses its doc comment: these say it again.
pub(crate) fn kind_filter() -> utoipa::openapi::Object {
    nullable_name_schema("Only this type.")
}

pub(crate) fn error_code_filter() -> utoipa::openapi::Object {
    nullable_name_schema("Only failures with this error code.")
}
