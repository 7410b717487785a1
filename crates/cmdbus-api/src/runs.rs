//! Who ran what: a command's attempt history (which worker ran each attempt, how it ended, and
//! why a reclaimed run was taken back), and the live worker processes the console lists.

use axum::extract::State;
use cmdbus_auth::Scope;
use cmdbus_domain::{AttemptView, WorkerView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::{PathId, parse_id},
    responses::{BadRequest, Forbidden, NotFound, Unavailable},
};

/// A command's runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptList {
    /// Oldest first.
    items: Vec<AttemptView>,
}

/// The attempt history of a command.
///
/// Every run, oldest first: the worker that ran it, when, how it ended, and why. A run taken
/// back from a worker that stopped renewing it ends `lease_lost`; when its worker process
/// stopped heartbeating (killed, paused, cut off), its error is `worker_lost` and names it.
#[utoipa::path(
    get,
    path = "/v1/commands/{id}/attempts",
    operation_id = "listAttempts",
    tag = "commands",
    params(("id" = uuid::Uuid, Path, description = "The command's id.")),
    responses(
        (status = 200, description = "The runs.", body = AttemptList),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn attempts(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<ApiJson<AttemptList>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let id = parse_id(&id)?;
    cmdbus_store::get(&state.pool, &principal.tenant, id)
        .await?
        .filter(|row| principal.reaches(row.id, row.subject.as_deref()))
        .ok_or(ApiError::NotFound)?;
    let runs = cmdbus_store::attempts_of(&state.pool, id).await?;
    Ok(ApiJson(AttemptList {
        items: runs.iter().map(cmdbus_store::AttemptRow::view).collect(),
    }))
}

/// The live workers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkerList {
    /// Oldest first.
    items: Vec<WorkerView>,
}

/// Live worker processes.
///
/// Every worker process whose heartbeat row is fresh (seen within its own `dead_after_ms`),
/// with what it runs now. Infrastructure only — hosts, process ids, counts — shared by every
/// tenant of the deployment, never a command or a payload; it needs `admin`.
#[utoipa::path(
    get,
    path = "/v1/workers",
    operation_id = "listWorkers",
    tag = "operate",
    responses(
        (status = 200, description = "The live workers.", body = WorkerList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn workers(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<WorkerList>, ApiError> {
    caller.require(Scope::Admin)?;
    let workers = cmdbus_store::list_workers(&state.pool).await?;
    Ok(ApiJson(WorkerList {
        items: workers.iter().map(cmdbus_store::WorkerRow::view).collect(),
    }))
}
