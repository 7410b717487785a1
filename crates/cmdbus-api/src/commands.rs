//! Submitting and reading commands.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cmdbus_auth::{Reach, Scope};
use cmdbus_bus::Change;
use cmdbus_domain::{CommandView, MAX_PRIORITY, Status};
use cmdbus_store::{CommandRow, ListFilter, NewCommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{ApiError, ApiJson, ApiState, auth::Caller, dispatch::announce};

/// Longest accepted key, type or ordering key.
const MAX_NAME: usize = 200;

/// `POST /v1/commands` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// Registered command type.
    #[serde(rename = "type")]
    kind: String,
    /// Handler input (any JSON; `null` when absent).
    #[serde(default)]
    payload: Value,
    /// 0..=9, default 0.
    priority: Option<i16>,
    /// Commands sharing it run one at a time, in order.
    ordering_key: Option<String>,
    /// Overrides the type's default.
    max_attempts: Option<i32>,
    /// The end user it belongs to: a browser token for this subject sees it. A token that
    /// submits always submits for its own subject.
    subject: Option<String>,
}

pub(crate) fn check_len(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(ApiError::InvalidField {
            field,
            reason: format!("must be 1 to {MAX_NAME} bytes"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::InvalidField {
            field,
            reason: "must not hold control characters".to_owned(),
        });
    }
    Ok(())
}

/// `POST /v1/commands`: record, publish, answer `202` (or `200` for a repeated idempotency key).
pub(crate) async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SubmitRequest>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Submit)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| ApiError::InvalidField {
                field: "Idempotency-Key",
                reason: "must be visible ASCII".to_owned(),
            })?;
            check_len("Idempotency-Key", key)?;
            Some(key.to_owned())
        }
    };
    check_len("type", &request.kind)?;
    let info = state.types.get(&request.kind).await?;
    let priority = request.priority.unwrap_or(0);
    if !(0..=MAX_PRIORITY).contains(&priority) {
        return Err(ApiError::InvalidField {
            field: "priority",
            reason: format!("must be 0 to {MAX_PRIORITY}"),
        });
    }
    let max_attempts = request.max_attempts.unwrap_or(info.max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::InvalidField {
            field: "max_attempts",
            reason: "must be 1 to 100".to_owned(),
        });
    }
    if let Some(key) = &request.ordering_key {
        check_len("ordering_key", key)?;
    }
    if let Some(subject) = &request.subject {
        check_len("subject", subject)?;
    }
    let subject = match &principal.reach {
        Reach::Tenant => request.subject,
        Reach::Subject(mine) if request.subject.as_ref().is_none_or(|asked| asked == mine) => {
            Some(mine.clone())
        }
        Reach::Subject(_) => {
            return Err(ApiError::InvalidField {
                field: "subject",
                reason: "a token submits for its own subject only".to_owned(),
            });
        }
        Reach::Ids(_) => {
            return Err(cmdbus_auth::AuthError::Forbidden("submit (for a subject)").into());
        }
    };
    if let Some(path) = cmdbus_store::find_nul(&request.payload) {
        return Err(ApiError::InvalidField {
            field: "payload",
            reason: format!("holds a NUL character (at {path}), which cannot be stored"),
        });
    }
    let command = NewCommand {
        id: Uuid::now_v7(),
        tenant: principal.tenant.clone(),
        kind: request.kind,
        payload: request.payload,
        priority,
        ordering_key: request.ordering_key,
        idempotency_key,
        max_attempts,
        subject,
    };
    state.quota.admit(&command.tenant, 1).await?;
    let submitted = state.batcher.insert(command.clone()).await?;
    if !submitted.created {
        let row = submitted.row;
        if !same_command(&row, &command) {
            return Err(ApiError::IdempotencyKeyReused);
        }
        return command_response(StatusCode::OK, &row);
    }
    metrics::counter!("cmdbus_commands_submitted_total", "type" => command.kind.clone())
        .increment(1);
    announce(&state.broker, std::slice::from_ref(&submitted.row)).await;
    let row = publish_now(&state, submitted.row).await;
    command_response(StatusCode::ACCEPTED, &row)
}

/// Whether an earlier command recorded under the same idempotency key is this one: every field
/// the client chose must match.
fn same_command(row: &CommandRow, command: &NewCommand) -> bool {
    row.kind == command.kind
        && serde_json::from_str::<Value>(row.payload.get()).is_ok_and(|p| p == command.payload)
        && row.priority == command.priority
        && row.ordering_key == command.ordering_key
        && row.max_attempts == command.max_attempts
        && row.subject == command.subject
}

/// Publishes a fresh row (with whatever else is being published right now), waiting at most
/// `publish_wait` for the confirm. The publish goes on in the group-commit loop, so neither a
/// slow broker nor a client that hangs up can cut it short; past the wait, the answer says `new`
/// and the command still moves on.
pub(crate) async fn publish_now(state: &ApiState, row: CommandRow) -> CommandRow {
    match tokio::time::timeout(
        state.config.publish_wait,
        state.batcher.publish(row.clone()),
    )
    .await
    {
        Ok(Some(row)) => row,
        Ok(None) | Err(_) => row,
    }
}

/// A command view with its `ETag` and `Location`.
fn command_response(status: StatusCode, row: &CommandRow) -> Result<Response, ApiError> {
    let view = row.view()?;
    let mut response = (status, ApiJson(&view)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/commands/{}", view.id)) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(etag) = HeaderValue::from_str(&etag(view.version)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The view plus the payload: what `GET /v1/commands/{id}` shows (lists and pushes leave the
/// payload out to stay small).
#[derive(Debug, Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    view: CommandView,
    payload: &'a serde_json::value::RawValue,
}

fn detail_response(row: &CommandRow) -> Result<Response, ApiError> {
    let view = row.view()?;
    let version = view.version;
    let mut response = ApiJson(Detail {
        view,
        payload: &row.payload,
    })
    .into_response();
    if let Ok(etag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version named by `If-None-Match` (`"12"`, `W/"12"` or `12`).
fn if_none_match(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    value.trim_matches('"').parse().ok()
}

pub(crate) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::InvalidId(raw.to_owned()))
}

/// Query of `GET /v1/commands/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    /// Seconds to wait for a change of the version named by `If-None-Match` (at most 60).
    wait: Option<u64>,
}

/// `GET /v1/commands/{id}`: the view; `304` while `If-None-Match` names the current version,
/// after waiting up to `?wait=N` seconds for it to change.
pub(crate) async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let id = parse_id(&id)?;
    let known = if_none_match(&headers);
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(60));
    // A long-poll holds a connection and a subscription: each key holds a bounded number.
    let _slot = if wait.is_zero() || known.is_none() {
        None
    } else {
        Some(state.auth.long_poll(principal)?)
    };
    // Subscribe before reading, so that a change between the read and the wait is not missed.
    let mut changes = state.feed.subscribe();
    let deadline = Instant::now() + wait;
    loop {
        let row = cmdbus_store::get(&state.pool, &principal.tenant, id)
            .await?
            .filter(|row| principal.reaches(row.id, row.subject.as_deref()))
            .ok_or(ApiError::NotFound)?;
        if known != Some(row.version) {
            return detail_response(&row);
        }
        if Instant::now() >= deadline {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(etag) = HeaderValue::from_str(&etag(row.version)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            return Ok(response);
        }
        // Wake on an event for this command, or re-read every 2 s in case events are not
        // flowing (broker away): the database is the truth either way.
        let recheck = (Instant::now() + Duration::from_secs(2)).min(deadline);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(recheck) => break,
                change = changes.recv() => match change {
                    Ok(Change::Event(event))
                        if event.command.id == id && event.command.version > row.version => break,
                    Ok(Change::Reset) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(recheck).await;
                        break;
                    }
                },
            }
        }
    }
}

/// Query of `GET /v1/commands`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only commands of this subject.
    subject: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A page of commands.
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    items: Vec<CommandView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
    /// The resume point of this read: a WebSocket subscription with `since` set to it misses no
    /// change made after the page was read.
    since: String,
}

/// `GET /v1/commands`: newest first, filtered by status and type, paginated by cursor.
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Page>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    if let Some(status) = &query.status {
        status
            .parse::<Status>()
            .map_err(|error| ApiError::InvalidQuery(error.to_string()))?;
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 500".to_owned()));
    }
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            Uuid::parse_str(cursor)
                .map_err(|_| ApiError::InvalidQuery(format!("bad cursor {cursor:?}")))?,
        ),
    };
    for (field, value) in [("type", &query.kind), ("subject", &query.subject)] {
        if let Some(value) = value {
            check_len(field, value)?;
        }
    }
    let (subject, ids) = match &principal.reach {
        Reach::Tenant => (query.subject, None),
        Reach::Subject(mine) => {
            if query.subject.as_ref().is_some_and(|asked| asked != mine) {
                return Err(ApiError::InvalidQuery(
                    "a token lists its own subject only".to_owned(),
                ));
            }
            (Some(mine.clone()), None)
        }
        Reach::Ids(ids) => (query.subject, Some(ids.iter().copied().collect())),
    };
    let filter = ListFilter {
        status: query.status,
        kind: query.kind,
        subject,
        ids,
        before,
        limit: limit + 1,
    };
    let (mut rows, since) = cmdbus_store::list(&state.pool, &principal.tenant, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|row| row.id.to_string()))
        .flatten();
    // One row that cannot be shown never hides the page.
    let items = rows
        .iter()
        .filter_map(|row| {
            row.view()
                .inspect_err(|error| tracing::error!(%error, "cannot build view; skipped"))
                .ok()
        })
        .collect();
    Ok(ApiJson(Page {
        items,
        next_cursor,
        since: since.as_str().to_owned(),
    }))
}
