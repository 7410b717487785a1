//! Bulk cancel: the unfinished commands of a selection (ids) or a filter, with a dry run that
//! counts them and answers the bound (`until`) that, sent back with the action and the count as
//! `limit`, makes the action take no more than the preview counted. Paged on the server, and
//! recorded in the audit trail.

use crate::operate::{Bulk, kind_filter};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState, audit,
    auth::Caller,
    extract::hyphenated_ids,
    fields::{integer, nullable_name_schema},
    responses::{
        BadRequest, Forbidden, PayloadTooLarge, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
    },
};

/// The states a bulk cancel takes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Cancellable {
    /// Waiting in PostgreSQL for its `run_at` (a delayed command).
    Scheduled,
    /// Recorded, not yet on the broker.
    New,
    /// Waiting in its queue (or for a retry).
    Queue,
    /// Running: asked to stop, `cancelled` when its handler does.
    Running,
}

impl Cancellable {
    fn as_str(self) -> &'static str {
        match self {
            Cancellable::Scheduled => "scheduled",
            Cancellable::New => "new",
            Cancellable::Queue => "queue",
            Cancellable::Running => "running",
        }
    }
}

/// `POST /v1/commands/cancel` body: which unfinished commands to cancel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelMatching {
    /// Only these commands (at most 1,000); empty or absent: every command the filter matches.
    #[serde(default, deserialize_with = "hyphenated_ids")]
    #[schema(max_items = 1000)]
    ids: Vec<Uuid>,
    /// Only this type.
    #[serde(rename = "type")]
    #[schema(schema_with = kind_filter)]
    kind: Option<String>,
    /// Only commands whose last error (waiting for a retry) has this code.
    #[schema(schema_with = error_code_filter)]
    error_code: Option<String>,
    /// Only commands created at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only commands created before this time. A dry run answers the bound it counted with:
    /// send it back with the action.
    until: Option<DateTime<Utc>>,
    /// Only commands in this state; absent: `scheduled`, `new`, `queue` and `running`.
    status: Option<Cancellable>,
    /// Cancel at most this many: send the dry run's `matched`, so that the action never takes
    /// more than the preview counted.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0)]
    limit: Option<i64>,
    /// Count, change nothing.
    #[serde(default)]
    #[schema(default = false)]
    dry_run: bool,
}

/// How many matched, and how many were cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelCount {
    /// Unfinished commands that match (created before `until`).
    #[schema(minimum = 0)]
    matched: i64,
    /// Cancelled now, or asked to stop if running (0 on a dry run); at most `matched` and
    /// `limit`, fewer when some finished meanwhile.
    #[schema(minimum = 0)]
    cancelled: i64,
    /// The bound counted with (the request's `until`, or the database's time of the count): send
    /// it with the action.
    until: DateTime<Utc>,
}

/// Cancel commands in bulk.
///
/// Every unfinished command of the caller's tenant that matches the selection (`ids`) and the
/// filter: one that has not started is `cancelled` at once, a running one is asked to stop.
/// `dry_run` only counts, and answers `until`: the action sent with that `until` and the count
/// as `limit` cancels no more than the preview counted, however many commands arrive meanwhile.
/// Recorded in the audit trail (`GET /v1/audit`). A browser token (limited to a subject or ids)
/// is refused.
#[utoipa::path(
    post,
    path = "/v1/commands/cancel",
    operation_id = "cancelCommands",
    tag = "operate",
    request_body = CancelMatching,
    responses(
        (status = 200, description = "How many matched and were cancelled.", body = CancelCount),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn cancel_matching(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<CancelMatching>,
) -> Result<ApiJson<CancelCount>, ApiError> {
    let Bulk { principal, until } = Bulk::check(
        &state,
        &caller,
        [request.kind.as_deref(), request.error_code.as_deref()],
        request.limit,
        request.until,
    )
    .await?;
    Bulk::check_ids(&request.ids)?;
    let statuses: Vec<&str> = match request.status {
        Some(status) => vec![status.as_str()],
        None => vec!["scheduled", "new", "queue", "running"],
    };
    let filter = cmdbus_store::CancelFilter {
        tenant: &principal.tenant,
        ids: (!request.ids.is_empty()).then_some(request.ids.as_slice()),
        kind: request.kind.as_deref(),
        error_code: request.error_code.as_deref(),
        since: request.since,
        until: Some(until),
        statuses: &statuses,
    };
    let matched = cmdbus_store::count_cancellable(&state.pool, &filter).await?;
    if request.dry_run {
        return Ok(ApiJson(CancelCount {
            matched,
            cancelled: 0,
            until,
        }));
    }
    let cancelled = Bulk::in_pages(&state, matched, request.limit, |after, limit| {
        let filter = &filter;
        let state = &state;
        async move {
            let rows = cmdbus_store::cancel_page(&state.pool, filter, after, limit).await?;
            for row in rows
                .iter()
                .filter(|row| row.status == cmdbus_domain::Status::Running)
            {
                // The worker's heartbeat would see the request too, within a third of a lease.
                let control = cmdbus_domain::Control::Cancel {
                    id: row.id,
                    generation: row.generation,
                };
                if let Err(error) = state.broker.publish_control(&control).await {
                    tracing::warn!(%error, id = %row.id, "cancel not broadcast; the heartbeat will deliver it");
                }
            }
            Ok(rows)
        }
    })
    .await?;
    let recorded = json!({
        "ids": request.ids,
        "type": request.kind,
        "error_code": request.error_code,
        "since": request.since,
        "until": until,
        "status": request.status,
        "limit": request.limit,
    });
    audit::record(&state, &principal, "cancel", &recorded, cancelled).await;
    Ok(ApiJson(CancelCount {
        matched,
        cancelled,
        until,
    }))
}

// A field whose schema comes from a function loses its doc comment: this says it again.
fn error_code_filter() -> utoipa::openapi::Object {
    nullable_name_schema("Only commands whose last error (waiting for a retry) has this code.")
}
