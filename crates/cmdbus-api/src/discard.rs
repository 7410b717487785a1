//! Discard: an operator drops parked failures (`fail` in an exception lane) for good, one or in
//! bulk. A discarded command is final: never replayed, and its parked message claims nothing
//! when a lane consumes it. The bulk form takes a selection (ids) or a filter, with a dry run
//! whose `until` and count, sent back with the action, bound it to what the preview counted;
//! paged on the server and recorded in the audit trail, like bulk cancel.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::Scope;
use cmdbus_domain::CommandView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState, audit,
    auth::Caller,
    extract::{PathId, hyphenated_ids, parse_id},
    fields::integer,
    operate::{Bulk, check_reach, error_code_filter, kind_filter, refusal},
    responses::{
        BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unavailable,
        UnprocessableEntity, UnsupportedMediaType,
    },
};

/// An exception lane, where failures are parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ParkedLane {
    /// `<ns>.cmd.<type>.exceptions1`: failures of the main queue (and of lane 2).
    Exceptions1,
    /// `<ns>.cmd.<type>.exceptions2`: failures of lane 1.
    Exceptions2,
}

impl ParkedLane {
    /// The lane as the store names it (`commands.lane`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParkedLane::Exceptions1 => "exceptions1",
            ParkedLane::Exceptions2 => "exceptions2",
        }
    }
}

/// Discard a parked failure.
///
/// A failed command parked in an exception lane becomes `discarded`: final, never replayed, and
/// its parked message claims nothing when the lane consumes it. `409` for any other state.
#[utoipa::path(
    post,
    path = "/v1/commands/{id}/discard",
    operation_id = "discardCommand",
    tag = "operate",
    params(("id" = uuid::Uuid, Path, description = "The command's id.")),
    responses(
        (status = 200, description = "Discarded.", body = CommandView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn discard(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Operate)?;
    let id = parse_id(&id)?;
    check_reach(&state, principal, id).await?;
    let Some(row) = cmdbus_store::discard(&state.pool, &principal.tenant, id).await? else {
        return Err(refusal(&state, principal, id, "discard").await);
    };
    state.broker.announce([row.event()]).await;
    Ok((StatusCode::OK, ApiJson(row.view())).into_response())
}

/// `POST /v1/commands/discard` body: which parked failures to discard.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscardMatching {
    /// Only these commands (at most 1,000); empty or absent: every parked failure the filter
    /// matches.
    #[serde(default, deserialize_with = "hyphenated_ids")]
    #[schema(max_items = 1000)]
    ids: Vec<Uuid>,
    /// Only this type.
    #[serde(rename = "type")]
    #[schema(schema_with = kind_filter)]
    kind: Option<String>,
    /// Only failures with this error code.
    #[schema(schema_with = error_code_filter)]
    error_code: Option<String>,
    /// Only failures parked in this lane.
    lane: Option<ParkedLane>,
    /// Only failures finished at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only failures finished before this time. A dry run answers the bound it counted with:
    /// send it back with the action.
    until: Option<DateTime<Utc>>,
    /// Discard at most this many: send the dry run's `matched`, so that the action never takes
    /// more than the preview counted.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0)]
    limit: Option<i64>,
    /// Count, change nothing.
    #[serde(default)]
    #[schema(default = false)]
    dry_run: bool,
}

/// How many matched, and how many were discarded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DiscardCount {
    /// Parked failures that match (finished before `until`).
    #[schema(minimum = 0)]
    matched: i64,
    /// Discarded now (0 on a dry run); at most `matched` and `limit`, fewer when some were
    /// replayed or re-run meanwhile.
    #[schema(minimum = 0)]
    discarded: i64,
    /// The bound counted with (the request's `until`, or the database's time of the count): send
    /// it with the action.
    until: DateTime<Utc>,
}

/// Discard parked failures in bulk.
///
/// Every parked failure of the caller's tenant that matches the selection (`ids`) and the
/// filter becomes `discarded`. `dry_run` only counts, and answers `until`: the action sent with
/// that `until` and the count as `limit` discards no more than the preview counted. Recorded in
/// the audit trail (`GET /v1/audit`). A browser token (limited to a subject or ids) is refused.
#[utoipa::path(
    post,
    path = "/v1/commands/discard",
    operation_id = "discardCommands",
    tag = "operate",
    request_body = DiscardMatching,
    responses(
        (status = 200, description = "How many matched and were discarded.", body = DiscardCount),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn discard_matching(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<DiscardMatching>,
) -> Result<ApiJson<DiscardCount>, ApiError> {
    let Bulk { principal, until } = Bulk::check(
        &state,
        &caller,
        [request.kind.as_deref(), request.error_code.as_deref()],
        request.limit,
        request.until,
    )
    .await?;
    Bulk::check_ids(&request.ids)?;
    let filter = cmdbus_store::DiscardFilter {
        tenant: &principal.tenant,
        ids: (!request.ids.is_empty()).then_some(request.ids.as_slice()),
        kind: request.kind.as_deref(),
        error_code: request.error_code.as_deref(),
        lane: request.lane.map(ParkedLane::as_str),
        since: request.since,
        until: Some(until),
    };
    let matched = cmdbus_store::count_discardable(&state.pool, &filter).await?;
    if request.dry_run {
        return Ok(ApiJson(DiscardCount {
            matched,
            discarded: 0,
            until,
        }));
    }
    let discarded = Bulk::in_pages(&state, matched, request.limit, |after, limit| {
        let filter = &filter;
        let pool = &state.pool;
        async move { Ok(cmdbus_store::discard_page(pool, filter, after, limit).await?) }
    })
    .await?;
    let recorded = json!({
        "ids": request.ids,
        "type": request.kind,
        "error_code": request.error_code,
        "lane": request.lane,
        "since": request.since,
        "until": until,
        "limit": request.limit,
    });
    audit::record(&state, &principal, "discard", &recorded, discarded).await;
    Ok(ApiJson(DiscardCount {
        matched,
        discarded,
        until,
    }))
}
