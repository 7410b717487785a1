//! What operators do to commands: replay failed ones (one or in bulk) and cancel.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_domain::DEFAULT_TENANT;
use serde::{Deserialize, Serialize};

use crate::{
    ApiError, ApiJson, ApiState,
    commands::{parse_id, publish_now},
    dispatch::{announce, dispatch},
};

/// Why an operation is refused, when the command exists.
async fn refusal(state: &ApiState, id: uuid::Uuid, verb: &str) -> ApiError {
    match cmdbus_store::get(&state.pool, DEFAULT_TENANT, id).await {
        Ok(Some(row)) => {
            ApiError::Conflict(format!("cannot {verb} a command in state {}", row.status))
        }
        Ok(None) => ApiError::NotFound,
        Err(error) => error.into(),
    }
}

fn accepted(row: &cmdbus_store::CommandRow) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, ApiJson(row.view()?)).into_response())
}

/// `POST /v1/commands/{id}/retry`: a failed or cancelled command runs again, as a new generation.
pub(crate) async fn retry(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Some(row) = cmdbus_store::replay(&state.pool, DEFAULT_TENANT, id).await? else {
        return Err(refusal(&state, id, "retry").await);
    };
    announce(&state.broker, std::slice::from_ref(&row)).await;
    let row = publish_now(&state, row).await;
    accepted(&row)
}

/// `POST /v1/commands/{id}/cancel`: a command that has not started is cancelled at once; a
/// running one is asked to stop.
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Some(row) = cmdbus_store::cancel(&state.pool, DEFAULT_TENANT, id).await? else {
        return Err(refusal(&state, id, "cancel").await);
    };
    announce(&state.broker, std::slice::from_ref(&row)).await;
    if row.status == cmdbus_domain::Status::Running.as_str() {
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryMatching {
    /// Only this type.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only failures with this error code.
    error_code: Option<String>,
    /// Only failures finished at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only failures finished before this time.
    until: Option<DateTime<Utc>>,
    /// Count, change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// How many matched, and how many were replayed.
#[derive(Debug, Serialize)]
pub(crate) struct RetryCount {
    matched: i64,
    retried: i64,
}

/// `POST /v1/commands/retry`: bulk replay, with a dry run that only counts.
pub(crate) async fn retry_matching(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<RetryMatching>,
) -> Result<ApiJson<RetryCount>, ApiError> {
    let (matched, rows) = cmdbus_store::replay_matching(
        &state.pool,
        DEFAULT_TENANT,
        request.kind.as_deref(),
        request.error_code.as_deref(),
        (request.since, request.until),
        request.dry_run,
    )
    .await?;
    let retried = if request.dry_run { 0 } else { matched };
    announce(&state.broker, &rows).await;
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
