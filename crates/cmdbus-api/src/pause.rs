//! Pause and resume a type. Types are shared by every tenant of a deployment, so these need
//! `admin` (besides `operate`). The pause is a row in PostgreSQL that every worker process reads
//! with its heartbeat: within about a second none consumes the type's queues any more, its
//! messages wait there, and its running commands finish.

use axum::extract::State;
use chrono::{DateTime, Utc};
use cmdbus_auth::Scope;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    audit::{self, actor},
    auth::Caller,
    extract::PathId,
    fields::check_name,
    responses::{BadRequest, Forbidden, NotFound, Unavailable},
};

/// A type's pause state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PauseState {
    /// The type.
    name: String,
    /// Workers take no new deliveries of it.
    paused: bool,
    /// Since when it is paused; `null` when it is not.
    #[schema(required = true)]
    paused_at: Option<DateTime<Utc>>,
}

/// Pause a type.
///
/// Within about a second every worker process stops taking new deliveries of the type (its
/// main queue, partitions and exception lanes); running commands finish, new ones wait in the
/// queues (`GET /v1/queues`) and nothing is lost. The pause is stored, so it survives restarts
/// of every process, until `POST /v1/types/{name}/resume`. Pausing a paused type changes
/// nothing. Types are shared by every tenant: it needs `admin`. Recorded in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/types/{name}/pause",
    operation_id = "pauseType",
    tag = "operate",
    params(("name" = String, Path, description = "The type's name.")),
    responses(
        (status = 200, description = "Paused.", body = PauseState),
        (status = 403, response = Forbidden),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(name): PathId,
) -> Result<ApiJson<PauseState>, ApiError> {
    caller.require(Scope::Operate)?;
    let principal = caller.require(Scope::Admin)?;
    // A name no type could have (too long, a control character) names no registered type.
    check_name("name", &name).map_err(|_| ApiError::TypeNotFound(name.clone()))?;
    let paused = cmdbus_store::pause_type(&state.pool, &name, &actor(principal))
        .await?
        .ok_or_else(|| ApiError::TypeNotFound(name.clone()))?;
    let filter = json!({ "type": name });
    audit::record(
        &state,
        principal,
        "pause",
        &filter,
        i64::from(paused.changed),
    )
    .await;
    Ok(ApiJson(PauseState {
        name,
        paused: true,
        paused_at: paused.paused_at,
    }))
}

/// Resume a type.
///
/// Within about a second workers consume the type's queues again. Resuming a type that is not
/// paused changes nothing. It needs `admin`; recorded in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/types/{name}/resume",
    operation_id = "resumeType",
    tag = "operate",
    params(("name" = String, Path, description = "The type's name.")),
    responses(
        (status = 200, description = "Resumed.", body = PauseState),
        (status = 403, response = Forbidden),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(name): PathId,
) -> Result<ApiJson<PauseState>, ApiError> {
    caller.require(Scope::Operate)?;
    let principal = caller.require(Scope::Admin)?;
    check_name("name", &name).map_err(|_| ApiError::TypeNotFound(name.clone()))?;
    let changed = cmdbus_store::resume_type(&state.pool, &name)
        .await?
        .ok_or_else(|| ApiError::TypeNotFound(name.clone()))?;
    let filter = json!({ "type": name });
    audit::record(&state, principal, "resume", &filter, i64::from(changed)).await;
    Ok(ApiJson(PauseState {
        name,
        paused: false,
        paused_at: None,
    }))
}
