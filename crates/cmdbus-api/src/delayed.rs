//! Re-timing a delayed command that still waits (`POST /v1/commands/{id}/reschedule`). When a
//! submit asks to run is `run_at.rs`; the sweep that releases due ones is in `sweep.rs`; a
//! cancel is the ordinary cancel.

use axum::{extract::State, response::Response};
use chrono::{DateTime, Utc};
use cmdbus_auth::Scope;
use cmdbus_domain::CommandView;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::{PathId, parse_id},
    operate::{accepted, check_reach, refusal},
    responses::{
        BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unavailable,
        UnprocessableEntity, UnsupportedMediaType,
    },
};

/// `POST /v1/commands/{id}/reschedule` body: when the command is to run now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reschedule {
    /// The new time to run it (RFC 3339); one already past makes it due at the sweep's next
    /// pass.
    run_at: DateTime<Utc>,
}

/// Re-time a scheduled command.
///
/// Only a command still `scheduled` can be re-timed: once the sweep released it (or it was
/// cancelled) the answer is `409`.
#[utoipa::path(
    post,
    path = "/v1/commands/{id}/reschedule",
    operation_id = "rescheduleCommand",
    tag = "operate",
    params(("id" = uuid::Uuid, Path, description = "The command's id.")),
    request_body = Reschedule,
    responses(
        (status = 202, description = "Re-timed.", body = CommandView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn reschedule(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
    ApiJson(request): ApiJson<Reschedule>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Operate)?;
    let id = parse_id(&id)?;
    let run_at = request.run_at;
    check_reach(&state, principal, id).await?;
    let Some(row) = cmdbus_store::reschedule(&state.pool, &principal.tenant, id, run_at).await?
    else {
        return Err(refusal(&state, principal, id, "reschedule").await);
    };
    state.broker.announce([row.event()]).await;
    accepted(&row)
}
