//! Reading one command: with its payload, an `ETag` and a long-poll (pages and searches are in
//! `search.rs`).

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cmdbus_auth::Scope;
use cmdbus_domain::CommandView;
use cmdbus_feed::Routed;
use cmdbus_store::CommandRow;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::{ApiQuery, PathId, parse_id},
    responses::{BadRequest, Forbidden, NotFound, Unavailable},
};

/// Longest long-poll, in seconds.
const MAX_WAIT: u64 = 60;

/// The view plus the payload: what `GET /v1/commands/{id}` shows (lists and pushes leave the
/// payload out to stay small).
#[derive(Debug, Serialize, ToSchema)]
struct CommandDetail<'a> {
    #[serde(flatten)]
    view: CommandView,
    /// The handler's input, as recorded.
    #[schema(value_type = Value)]
    payload: &'a RawValue,
}

fn detail_response(row: &CommandRow) -> Result<Response, ApiError> {
    let view = row.view();
    let version = view.version;
    let mut response = ApiJson(CommandDetail {
        view,
        payload: &row.payload,
    })
    .into_response();
    if let Ok(etag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The `ETag` of a version.
pub(crate) fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// What `If-None-Match` says the client holds (RFC 9110 §13.1.2).
#[derive(Debug, PartialEq)]
enum Held {
    /// `*`: any current version of the command.
    Any,
    /// A list of entity tags (`"12"`, `W/"12"` or `12`, comma-separated).
    Versions(Vec<i64>),
}

impl Held {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?.trim();
        if value == "*" {
            return Some(Held::Any);
        }
        let versions: Vec<i64> = value
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.trim_matches('"').parse().ok()
            })
            .collect();
        (!versions.is_empty()).then_some(Held::Versions(versions))
    }

    /// Whether the command at `version` is what the client holds (a `304`).
    fn matches(&self, version: i64) -> bool {
        match self {
            Held::Any => true,
            Held::Versions(versions) => versions.contains(&version),
        }
    }
}

/// Query and headers of `GET /v1/commands/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShowQuery {
    /// With `If-None-Match`: seconds to wait for the command to change before answering `304`.
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
}

/// Headers of `GET /v1/commands/{id}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the `HeaderMap`; the type only describes the header
pub(crate) struct ShowHeaders {
    /// The `ETag`s you hold: `304` while one names the current version; `*` answers `304` at
    /// once whenever the command exists (no long-poll).
    #[param(rename = "If-None-Match", required = false)]
    if_none_match: String,
}

/// One command, with its payload.
///
/// `If-None-Match` naming the current version answers `304`; with `?wait=N` the answer waits up
/// to N seconds for a change first (a long-poll).
#[utoipa::path(
    get,
    path = "/v1/commands/{id}",
    operation_id = "getCommand",
    tag = "commands",
    params(
        ("id" = uuid::Uuid, Path, description = "The command's id."),
        ShowQuery,
        ShowHeaders,
    ),
    responses(
        (status = 200, description = "The command.", body = CommandDetail, headers(
            ("ETag" = String, description = "The command's version, quoted."),
        )),
        (status = 304, description = "Unchanged (after waiting, with `wait`).", headers(
            ("ETag" = String, description = "The command's version, quoted."),
        )),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<ShowQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let id = parse_id(&id)?;
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT {
        return Err(ApiError::InvalidQuery(format!(
            "wait must be 0 to {MAX_WAIT}"
        )));
    }
    let held = Held::from_headers(&headers);
    // `*` matches every version, so there is no change to wait for.
    let wait = if held == Some(Held::Any) { 0 } else { wait };
    // A long-poll holds a connection and a subscription: each key holds a bounded number.
    let _slot = if wait == 0 || held.is_none() {
        None
    } else {
        Some(state.auth.long_poll(principal)?)
    };
    // Follow the command before reading it, so that a change between the read and the wait is
    // not missed. Only this command's changes are queued for the request.
    let mut changes = state.feed.subscriber();
    changes.follow_ids(&[id]);
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let row = cmdbus_store::get(&state.pool, &principal.tenant, id)
            .await?
            .filter(|row| principal.reaches(row.id, row.subject.as_deref()))
            .ok_or(ApiError::NotFound)?;
        if !held.as_ref().is_some_and(|held| held.matches(row.version)) {
            return detail_response(&row);
        }
        if Instant::now() >= deadline {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(etag) = HeaderValue::from_str(&etag(row.version)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            return Ok(response);
        }
        // Wake on a newer change of this command, or re-read every 2 s in case changes are not
        // flowing (broker and database reader away): the database is the truth either way.
        let recheck = (Instant::now() + Duration::from_secs(2)).min(deadline);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(recheck) => break,
                delivery = changes.next() => match delivery.map(|delivery| delivery.item) {
                    Ok(Routed::Change(change)) if change.event.command.version > row.version => {
                        break;
                    }
                    Ok(Routed::Change(_)) => {}
                    // Changes were skipped or dropped: read again.
                    Ok(Routed::Reset) | Err(_) => break,
                },
            }
        }
    }
}
