//! The operators' audit trail: who did which bulk action, pause or resume or schedule change,
//! when, on what filter and to how many commands. The actions record it (`record`); `GET /v1/audit` reads it.

use axum::extract::State;
use chrono::{DateTime, Utc};
use cmdbus_auth::{Credential, Principal, Reach, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::ApiQuery,
    responses::{BadRequest, Forbidden, Unavailable},
};

/// Who the caller is, as the trail names it: `key:<id>`, `token:<subject>` (or
/// `token:key:<id>`, the minting key, for a token without a subject), or `open`.
pub(crate) fn actor(principal: &Principal) -> String {
    match &principal.credential {
        Credential::Key(id) => format!("key:{id}"),
        Credential::Token { key, .. } => match (principal.subject(), key) {
            (Some(subject), _) => format!("token:{subject}"),
            (None, Some(key)) => format!("token:key:{key}"),
            (None, None) => "token".to_owned(),
        },
        Credential::Open => "open".to_owned(),
    }
}

/// Records an action of `principal`. The action is done already: a trail that cannot be written
/// is logged, not answered as the action's failure (the caller would repeat what was done).
pub(crate) async fn record(
    state: &ApiState,
    principal: &Principal,
    action: &str,
    filter: &Value,
    count: i64,
) {
    let actor = actor(principal);
    let entry = cmdbus_store::AuditEntry {
        tenant: &principal.tenant,
        actor: &actor,
        action,
        filter,
        count,
    };
    if let Err(error) = cmdbus_store::record_audit(&state.pool, &entry).await {
        tracing::error!(%error, action, %actor, %filter, count, "audit row not written");
    }
}

/// Most rows a page holds.
const MAX_PAGE: i64 = 500;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only rows older than this one (the previous page's `next`).
    #[param(minimum = 1)]
    before: Option<i64>,
    /// Rows per page.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// One action of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEntryView {
    /// Its place in the trail: higher is newer.
    id: i64,
    /// When it was done.
    at: DateTime<Utc>,
    /// Who did it: `key:<id>`, `token:<subject>` or `open`.
    actor: String,
    /// What was done.
    #[schema(
        pattern = "^(cancel|retry|discard|pause|resume|schedule_create|schedule_pause|schedule_resume|schedule_delete)$"
    )]
    action: String,
    /// The selection or filter it was given (for a pause or resume, the type; for a schedule's
    /// change, the schedule's id, name and type).
    #[schema(value_type = Object)]
    filter: Value,
    /// How many commands it changed (for a pause or resume, 1 if the type's state changed; 1
    /// for a schedule's change).
    #[schema(minimum = 0)]
    count: i64,
}

/// A page of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    items: Vec<AuditEntryView>,
    /// `before` of the next page; `null` on the last.
    #[schema(required = true)]
    next: Option<i64>,
}

/// The operators' audit trail.
///
/// One row per bulk cancel, bulk retry, bulk discard (not their dry runs), pause and resume,
/// and per schedule created, paused, resumed or deleted by the caller's tenant, newest first:
/// who, when, the filter or selection, and how many commands it changed. Page with `before`
/// (the previous page's `next`). API keys only: a browser token,
/// limited to a subject or ids, is refused.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAudit",
    tag = "operate",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the trail.", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let principal = caller.require(Scope::Operate)?;
    // The trail names the whole tenant's selections: not for a token limited to a subject.
    if principal.reach != Reach::Tenant {
        return Err(cmdbus_auth::AuthError::Forbidden("operate (on the whole tenant)").into());
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::InvalidQuery(
            "before must be 1 or more".to_owned(),
        ));
    }
    let rows =
        cmdbus_store::list_audit(&state.pool, &principal.tenant, query.before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|row| row.id))
        .flatten();
    Ok(ApiJson(AuditPage {
        items: rows
            .into_iter()
            .map(|row| AuditEntryView {
                id: row.id,
                at: row.at,
                actor: row.actor,
                action: row.action,
                filter: row.filter.0,
                count: row.count,
            })
            .collect(),
        next,
    }))
}
