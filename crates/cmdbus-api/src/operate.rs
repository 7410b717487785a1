//! What operators do to commands: replay failed ones (one or in bulk) and cancel.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{Principal, Reach, Scope};
use cmdbus_domain::CommandView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    dispatch::dispatch,
    extract::{PathId, parse_id},
    fields::{check_name, nullable_name_schema},
    responses::{
        BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
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
async fn check_reach(
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
async fn refusal(state: &ApiState, principal: &Principal, id: uuid::Uuid, verb: &str) -> ApiError {
    match reachable(state, principal, id).await {
        Ok(row) => ApiError::Conflict(format!("cannot {verb} a command in state {}", row.status)),
        Err(error) => error,
    }
}

fn accepted(row: &cmdbus_store::CommandRow) -> Result<Response, ApiError> {
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
    /// Only failures finished before this time.
    until: Option<DateTime<Utc>>,
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
    /// Replayed now (0 on a dry run).
    #[schema(minimum = 0)]
    retried: i64,
}

/// Replay failed commands in bulk.
///
/// Every failed command that matches runs again as a new generation; `dry_run` only counts.
#[utoipa::path(
    post,
    path = "/v1/commands/retry",
    operation_id = "retryCommands",
    tag = "operate",
    request_body = RetryMatching,
    responses(
        (status = 200, description = "How many matched and were replayed.", body = RetryCount),
        (status = 400, response = BadRequest),
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
    let principal = caller.require(Scope::Operate)?;
    if principal.reach != Reach::Tenant {
        return Err(cmdbus_auth::AuthError::Forbidden("operate (on the whole tenant)").into());
    }
    for (field, value) in [("type", &request.kind), ("error_code", &request.error_code)] {
        if let Some(value) = value {
            check_name(field, value)?;
        }
    }
    let (matched, rows) = cmdbus_store::replay_matching(
        &state.pool,
        &principal.tenant,
        request.kind.as_deref(),
        request.error_code.as_deref(),
        (request.since, request.until),
        request.dry_run,
    )
    .await?;
    let retried = if request.dry_run { 0 } else { matched };
    state
        .broker
        .announce(rows.iter().map(cmdbus_store::CommandRow::event))
        .await;
    // Rows not confirmed now stay `new` and the relay publishes them.
    for chunk in rows.chunks(500) {
        dispatch(
            &state.pool,
            &state.broker,
            state.config.redeliver_after,
            chunk.to_vec(),
        )
        .await?;
    }
    Ok(ApiJson(RetryCount { matched, retried }))
}

// A field whose schema comes from a function loses its doc comment: these say it again.
fn kind_filter() -> utoipa::openapi::Object {
    nullable_name_schema("Only this type.")
}

fn error_code_filter() -> utoipa::openapi::Object {
    nullable_name_schema("Only failures with this error code.")
}
