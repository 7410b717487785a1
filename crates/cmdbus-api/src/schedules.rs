//! Schedules (recurring commands) over REST: create, list, pause, resume, delete. Tenant-wide
//! like the operator's other actions: changing one needs `operate`, listing `read`, and a browser
//! token limited to a subject or ids is refused. Each change is written to the audit trail;
//! `schedule_sweep.rs` submits the ticks.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{Principal, Reach, Scope};
use cmdbus_store::ScheduleRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState,
    audit::record,
    auth::Caller,
    extract::{PathId, parse_id},
    fields::{check_name, name_schema, nullable_name_schema},
    payload::check_payload,
    recurrence::{Missed, Recurrence},
    responses::{
        BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unavailable,
        UnprocessableEntity, UnsupportedMediaType,
    },
    submit::Payload,
};

/// Most schedules a list answers.
const MAX_LISTED: i64 = 1_000;

/// `POST /v1/schedules` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// A name for it, unique in the tenant (a startup file declares schedules by name).
    #[schema(schema_with = schedule_name_schema)]
    name: Option<String>,
    /// A registered command type (`GET /v1/types`), submitted at each tick.
    #[serde(rename = "type")]
    #[schema(schema_with = kind_schema)]
    kind: String,
    /// The payload each tick submits, checked against the type's schema now.
    #[serde(default)]
    #[schema(value_type = Payload)]
    payload: Value,
    /// A cron pattern: 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
    /// seconds first.
    #[schema(example = "*/5 * * * *")]
    cron: String,
    /// The IANA time zone the pattern is read in; `UTC` when absent.
    #[schema(example = "Europe/Paris")]
    timezone: Option<String>,
    /// Ticks a sweep finds more than 10 s past (after an outage): `skip` them (the default), or
    /// submit one command for all of them (`catch_up_once`).
    #[schema(pattern = "^(skip|catch_up_once)$")]
    missed: Option<String>,
}

fn schedule_name_schema() -> utoipa::openapi::Object {
    nullable_name_schema(
        "A name for it, unique in the tenant (a startup file declares schedules by name).",
    )
}

fn kind_schema() -> utoipa::openapi::Object {
    name_schema("A registered command type (`GET /v1/types`), submitted at each tick.")
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleView {
    /// Its id.
    id: Uuid,
    /// Its name, unique in the tenant.
    #[schema(required = true)]
    name: Option<String>,
    /// The command type each tick submits.
    #[serde(rename = "type")]
    kind: String,
    /// The payload each tick submits.
    #[schema(value_type = Payload)]
    payload: Value,
    /// The cron pattern.
    cron: String,
    /// The IANA time zone it is read in.
    timezone: String,
    /// What a sweep does with ticks long past: `skip` or `catch_up_once`.
    #[schema(pattern = "^(skip|catch_up_once)$")]
    missed: String,
    /// The next tick (while paused: the one it had; a resume starts from the next future one).
    next_run_at: DateTime<Utc>,
    /// No ticks are submitted while paused.
    paused: bool,
    /// Since when it is paused.
    #[schema(required = true)]
    paused_at: Option<DateTime<Utc>>,
    /// The last tick a command was submitted for.
    #[schema(required = true)]
    last_tick_at: Option<DateTime<Utc>>,
    /// The command submitted for it.
    #[schema(required = true)]
    last_command: Option<Uuid>,
    /// Declared by the startup file (`CMDBUS_SCHEDULES`).
    declared: bool,
    /// When it was recorded.
    created_at: DateTime<Utc>,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(row: ScheduleRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            kind: row.kind,
            payload: row.payload.0,
            cron: row.cron,
            timezone: row.timezone,
            missed: row.missed,
            next_run_at: row.next_run_at,
            paused: row.paused_at.is_some(),
            paused_at: row.paused_at,
            last_tick_at: row.last_tick_at,
            last_command: row.last_command,
            declared: row.declared,
            created_at: row.created_at,
        }
    }
}

/// A tenant's schedules.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// Oldest first (at most 1,000).
    items: Vec<ScheduleView>,
}

/// The caller, if it may act on the whole tenant with `scope`.
fn tenant_wide(caller: &Caller, scope: Scope) -> Result<&Principal, ApiError> {
    let principal = caller.require(scope)?;
    if principal.reach != Reach::Tenant {
        return Err(cmdbus_auth::AuthError::Forbidden("schedules (on the whole tenant)").into());
    }
    Ok(principal)
}

/// Checks what a schedule says besides its type: its cron pattern, time zone and policy.
pub(crate) fn check_recurrence(
    cron: &str,
    timezone: Option<&str>,
    missed: Option<&str>,
) -> Result<(Recurrence, Missed), ApiError> {
    let recurrence = Recurrence::parse(cron, timezone.unwrap_or("UTC"))?;
    let missed = match missed {
        None => Missed::Skip,
        Some(name) => Missed::parse(name).ok_or_else(|| ApiError::InvalidField {
            field: "missed",
            reason: "must be `skip` or `catch_up_once`".to_owned(),
        })?,
    };
    Ok((recurrence, missed))
}

/// Create a schedule.
///
/// From its next tick on, each tick of `cron` (read in `timezone`) submits one command of
/// `type` with `payload`, exactly once however many api processes run (its idempotency key is
/// `schedule:<id>:<tick>`). A tick a sweep finds more than 10 s past follows `missed`.
/// Needs `operate`; recorded in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/schedules",
    operation_id = "createSchedule",
    tag = "operate",
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "Recorded.", body = ScheduleView, headers(
            ("Location" = String, description = "The schedule's URL."),
        )),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let principal = tenant_wide(&caller, Scope::Operate)?;
    if let Some(name) = &request.name {
        check_name("name", name)?;
    }
    check_name("type", &request.kind)?;
    let (recurrence, missed) = check_recurrence(
        &request.cron,
        request.timezone.as_deref(),
        request.missed.as_deref(),
    )?;
    let kind = state.types.get(&request.kind).await?;
    check_payload(&request.payload)?;
    if let Some(schema) = &kind.schema {
        schema.check(&request.payload)?;
    }
    let next_run_at = recurrence
        .next_after(Utc::now())
        .ok_or_else(|| ApiError::InvalidCron("it has no tick after now".to_owned()))?;
    let schedule = cmdbus_store::NewSchedule {
        id: Uuid::now_v7(),
        tenant: &principal.tenant,
        name: request.name.as_deref(),
        kind: &request.kind,
        payload: &request.payload,
        cron: &request.cron,
        timezone: request.timezone.as_deref().unwrap_or("UTC"),
        missed: missed.as_str(),
        next_run_at,
    };
    let row = cmdbus_store::create_schedule(&state.pool, &schedule)
        .await
        .map_err(|error| match &error {
            cmdbus_store::StoreError::Database(sqlx::Error::Database(db))
                if db.constraint() == Some("schedules_name_per_tenant") =>
            {
                ApiError::Conflict("the tenant has a schedule of that name already".to_owned())
            }
            _ => error.into(),
        })?;
    audited(&state, principal, "schedule_create", &row).await;
    let location = HeaderValue::from_str(&format!("/v1/schedules/{}", row.id));
    let mut response = (StatusCode::CREATED, ApiJson(ScheduleView::from(row))).into_response();
    if let Ok(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Records a change to `row` in the audit trail (the filter names the schedule).
async fn audited(state: &ApiState, principal: &Principal, action: &str, row: &ScheduleRow) {
    let filter = json!({ "schedule": row.id, "name": row.name, "type": row.kind });
    record(state, principal, action, &filter, 1).await;
}

/// The caller's tenant's schedules.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    operation_id = "listSchedules",
    tag = "operate",
    responses(
        (status = 200, description = "The schedules, oldest first.", body = ScheduleList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<ScheduleList>, ApiError> {
    let principal = tenant_wide(&caller, Scope::Read)?;
    let rows = cmdbus_store::list_schedules(&state.pool, &principal.tenant, MAX_LISTED).await?;
    Ok(ApiJson(ScheduleList {
        items: rows.into_iter().map(ScheduleView::from).collect(),
    }))
}

/// Pause a schedule.
///
/// No tick is submitted until it is resumed; pausing a paused schedule changes nothing. Needs
/// `operate`; recorded in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/pause",
    operation_id = "pauseSchedule",
    tag = "operate",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "Paused.", body = ScheduleView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<ApiJson<ScheduleView>, ApiError> {
    let principal = tenant_wide(&caller, Scope::Operate)?;
    let id = parse_id(&id)?;
    let change = cmdbus_store::pause_schedule(&state.pool, &principal.tenant, id)
        .await?
        .ok_or(ApiError::ScheduleNotFound)?;
    if change.changed {
        audited(&state, principal, "schedule_pause", &change.row).await;
    }
    Ok(ApiJson(change.row.into()))
}

/// Resume a schedule.
///
/// It goes on from its next future tick: the ticks of the pause are not submitted (`409` when
/// its pattern has no tick left, say a past year). Resuming a schedule that is not paused
/// changes nothing. Needs `operate`; recorded in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/resume",
    operation_id = "resumeSchedule",
    tag = "operate",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "Resumed.", body = ScheduleView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<ApiJson<ScheduleView>, ApiError> {
    let principal = tenant_wide(&caller, Scope::Operate)?;
    let id = parse_id(&id)?;
    let row = cmdbus_store::get_schedule(&state.pool, &principal.tenant, id)
        .await?
        .ok_or(ApiError::ScheduleNotFound)?;
    let next_run_at = Recurrence::parse(&row.cron, &row.timezone)
        .ok()
        .and_then(|recurrence| recurrence.next_after(Utc::now()))
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "its cron {:?} in {:?} has no tick after now",
                row.cron, row.timezone
            ))
        })?;
    let change = cmdbus_store::resume_schedule(&state.pool, &principal.tenant, id, next_run_at)
        .await?
        .ok_or(ApiError::ScheduleNotFound)?;
    if change.changed {
        audited(&state, principal, "schedule_resume", &change.row).await;
    }
    Ok(ApiJson(change.row.into()))
}

/// Delete a schedule.
///
/// No tick is submitted after this answer; the commands it submitted stay. Needs `operate`;
/// recorded in the audit trail.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{id}",
    operation_id = "deleteSchedule",
    tag = "operate",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let principal = tenant_wide(&caller, Scope::Operate)?;
    let id = parse_id(&id)?;
    let row = cmdbus_store::get_schedule(&state.pool, &principal.tenant, id)
        .await?
        .ok_or(ApiError::ScheduleNotFound)?;
    if !cmdbus_store::delete_schedule(&state.pool, &principal.tenant, id).await? {
        return Err(ApiError::ScheduleNotFound);
    }
    audited(&state, principal, "schedule_delete", &row).await;
    Ok(StatusCode::NO_CONTENT)
}
