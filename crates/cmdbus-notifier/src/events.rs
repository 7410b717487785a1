//! `GET /v1/events`, the change feed as Server-Sent Events, with its description. The same
//! selection, credentials, caps and resume as the WebSocket: this handler reads the request
//! (the selection, the credential — a browser token may come as `access_token`, since
//! `EventSource` cannot send headers — and `Last-Event-ID`), and the session serves the stream
//! (`session::open_stream`).

use axum::{
    extract::{ConnectInfo, State},
    http::{Extensions, HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use cmdbus_auth::{AuthError, problem_response};
use cmdbus_domain::Problem;
use cmdbus_store::Cursor;
use futures_util::stream;
use serde::Deserialize;
use std::{convert::Infallible, net::SocketAddr};
use utoipa::IntoParams;

use crate::{
    NotifierState,
    protocol::{MAX_IDS_PER_MESSAGE, Selector},
    session::open_stream,
};

/// Query of `GET /v1/events`.
/// One event of the stream, as a Server-Sent Events parser hands it over.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the stream's framing; the stream writes its lines itself
pub(crate) struct SseEvent {
    /// `subscribed`, `command`, `reset`, `renew` or `error`.
    event: Option<String>,
    /// One line of JSON: the command view for `command`, `{"cursor"}` for `subscribed` and
    /// `reset`, `{"expires_at"}` for `renew`, a problem for `error`.
    data: String,
    /// The resume cursor, when it moved: what `Last-Event-ID` sends back on a reconnect.
    id: Option<String>,
    /// Milliseconds a client waits before it reconnects (the stream's first line).
    retry: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub(crate) struct EventsQuery {
    /// Follow these commands: comma-separated ids, at most 1,000.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})*$",
        max_length = 36_999
    )]
    ids: Option<String>,
    /// Follow every command in the credential's reach (`true`); exactly one of `ids` and `all`.
    all: Option<bool>,
    /// Resume after this cursor (`Last-Event-ID` wins when both are sent).
    #[param(pattern = "^[0-9]{1,20}:[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?$")]
    since: Option<String>,
    /// A browser token, for `EventSource`, which cannot send `Authorization` (never an API key:
    /// keys never go in URLs). Never logged.
    access_token: Option<String>,
}

/// Headers of `GET /v1/events`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the `HeaderMap`; the type only describes the header
pub(crate) struct EventsHeaders {
    /// The last event id received: what `EventSource` sends by itself when it reconnects.
    #[param(rename = "Last-Event-ID", required = false)]
    last_event_id: String,
}

/// The change feed as Server-Sent Events.
///
/// `text/event-stream`, first `retry: 1000`; then `event: command` (`data:` the command view,
/// `id:` the cursor when it moved) for each change (after a replay of what changed since
/// `Last-Event-ID` or `since`), `event: subscribed` (`id:` and `data: {"cursor"}`) once the
/// replay is sent, `event: reset` (`id:`, `data: {"cursor"}`: reload, go on from it), `event:
/// renew` (`data: {"expires_at"}`) before a token expires (the stream ends at expiry), and a
/// `: ping` comment every 15 s. A graceful stop ends the stream after the drain's changes.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "events",
    tag = "push",
    params(EventsQuery, EventsHeaders),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The stream of events.", content_type = "text/event-stream",
            body = SseEvent),
        (status = 400, description = "`bad_request`: name exactly one of `ids` and `all=true`; \
            `bad_cursor`: not a cursor this server sent.", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no valid credential; `key_in_query`: an \
            API key in `access_token` (keys go in the `Authorization` header only).",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `read`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A socket cap is reached (a stream counts as a socket), or \
            too many requests.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the status database cannot be reached.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn events(
    State(state): State<NotifierState>,
    headers: HeaderMap,
    extensions: Extensions,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => return bad_request("bad_request", rejection.body_text()),
    };
    let selector = match selection(&query, &headers) {
        Ok(selector) => selector,
        Err((code, detail)) => return bad_request(code, detail),
    };
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let principal = match (headers.get(header::AUTHORIZATION), &query.access_token) {
        (None, Some(token)) if cmdbus_auth::looks_like_key(token) => {
            return problem_response(
                StatusCode::UNAUTHORIZED,
                "key_in_query",
                "API keys never go in URLs: send it as `Authorization: Bearer`, or give the \
                 browser a token",
            );
        }
        (None, Some(token)) => state.auth.bearer_from(token, address).await,
        (header, _) => match header.map(|value| value.to_str()).transpose() {
            Ok(header) => state.auth.authorization_from(header, address).await,
            Err(_) => Err(AuthError::Unauthorized(
                "the Authorization header is not ASCII",
            )),
        },
    };
    let principal = match principal.and_then(|principal| {
        state.auth.admit(&principal)?;
        Ok(principal)
    }) {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    if !state.feed.ready().await {
        return problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the status database is unavailable",
        );
    }
    match open_stream(state, principal, selector, address) {
        Ok(body) => {
            let body = stream::unfold(body, |mut body| async move {
                let event = body.recv().await?;
                Some((Ok::<Event, Infallible>(event), body))
            });
            let mut response = Sse::new(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// What the request follows, and where it resumes: exactly one of `ids` and `all=true`, and a
/// cursor from `Last-Event-ID` (what `EventSource` sends on reconnect) or `since`; else the
/// code and detail of a `400`.
fn selection(query: &EventsQuery, headers: &HeaderMap) -> Result<Selector, (&'static str, String)> {
    let all = query.all.unwrap_or(false);
    let ids = match (&query.ids, all) {
        (Some(_), true) | (None, false) => {
            return Err((
                "bad_request",
                "name exactly one of `ids` and `all=true`".to_owned(),
            ));
        }
        (None, true) => Vec::new(),
        (Some(ids), false) => cmdbus_domain::parse_id_list(ids, MAX_IDS_PER_MESSAGE)
            .map_err(|detail| ("bad_request", detail))?,
    };
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let since = last_event_id.or(query.since.as_deref());
    if let Some(since) = since
        && let Err(error) = Cursor::parse(since)
    {
        return Err(("bad_cursor", error.to_string()));
    }
    Ok(Selector {
        ids,
        all,
        since: since.map(|since| serde_json::Value::String(since.to_owned())),
    })
}

fn bad_request(code: &str, detail: String) -> Response {
    problem_response(StatusCode::BAD_REQUEST, code, detail)
}
