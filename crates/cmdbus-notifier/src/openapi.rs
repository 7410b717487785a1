//! `GET /v1/ws`, the WebSocket upgrade, with its description: the handshake headers as
//! parameters (what a WebSocket client sends), the protocol in words, and a problem+json answer
//! for a request that is not a valid handshake.

use axum::{
    extract::{
        ConnectInfo, State, WebSocketUpgrade,
        ws::rejection::{ConnectionNotUpgradable, WebSocketUpgradeRejection},
    },
    http::{Extensions, HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cmdbus_auth::{AuthError, problem_response};
use cmdbus_domain::Problem;
use std::net::SocketAddr;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::NotifierState;

/// Largest frame and message a client may send: requests are small JSON. The frame bound is
/// checked on the frame's header, so a client cannot make us buffer a large frame first.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Read buffer of a connection, allocated up front and kept: clients send little (an `auth` with
/// a token, a `subscribe` naming a few ids fit), and there may be tens of thousands of them. A
/// larger message is still taken whole (up to `MAX_CLIENT_MESSAGE`); the buffer grows for it.
const READ_BUFFER: usize = 1024;

/// Bytes queued for a client past which a write fails (the session then drops the client).
/// Messages are flushed at most 64 at a time (the changes the feed has ready), and pongs to the
/// client's pings are bounded by the session's ping budget; so this only has to hold a few dozen
/// of the largest message we send (a command view with its payload and result), and caps
/// whatever else might queue.
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;

/// The WebSocket handshake (RFC 6455 section 4.1), as a client sends it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // axum's `WebSocketUpgrade` reads them; the type only describes them
struct Handshake {
    /// A list of connection options that holds `Upgrade`.
    #[param(
        rename = "Connection",
        pattern = "^([^,]*,)*[ \\t]*[Uu][Pp][Gg][Rr][Aa][Dd][Ee][ \\t]*(,[^,]*)*$"
    )]
    connection: String,
    /// `websocket`, in any case.
    #[param(rename = "Upgrade", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$")]
    upgrade: String,
    /// `13`.
    #[param(rename = "Sec-WebSocket-Version", pattern = "^13$")]
    version: String,
    /// 16 random bytes in base64.
    #[param(rename = "Sec-WebSocket-Key", pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$")]
    key: String,
}

/// A handshake key is 16 bytes in base64 (RFC 6455 section 4.1): what `Handshake` states.
fn valid_key(key: &[u8]) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24
        && key[..21].iter().all(base64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

/// The WebSocket of state changes.
///
/// Send `{"op":"subscribe","ids":[...]}` or `{"op":"subscribe","all":true}`, optionally with
/// `"since":"<cursor>"` (a cursor this server sent), and `{"op":"unsubscribe",...}` likewise.
/// With `since`, the latest state of every matching command changed after the cursor is replayed
/// first; then `{"op":"subscribed","cursor":"..."}`, then
/// `{"op":"command","command":<CommandView>,"cursor":"..."}` per change (`cursor` only when it
/// moved). Keep the last cursor received and resume with it. `{"op":"reset","cursor":"..."}`:
/// reload, then go on from the cursor. `{"op":"error","code":...,"message":...}` answers a bad
/// request (`bad_request`, `bad_cursor`, `too_many_ids`, `unavailable`); the socket stays open.
///
/// A client that can set headers authenticates with `Authorization: Bearer` on the upgrade
/// (refused with `401` before it); a browser, which cannot, upgrades without it and sends
/// `{"op":"auth","token":"..."}` first.
#[utoipa::path(
    get,
    path = "/v1/ws",
    operation_id = "websocket",
    tag = "push",
    params(Handshake),
    security(("bearer" = []), ()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol.", headers(
            ("Connection" = String, description = "`upgrade`."),
            ("Upgrade" = String, description = "`websocket`."),
            ("Sec-WebSocket-Accept" = String, description = "The handshake's answer."),
        )),
        (status = 400, description = "`not_websocket`: not a valid WebSocket handshake.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: the `Authorization` header holds no valid \
            credential.", body = Problem, content_type = "application/problem+json", headers(
            ("WWW-Authenticate" = String, description = "`Bearer realm=\"cmdbus\"`."),
        )),
        (status = 426, description = "`upgrade_required`: the connection cannot be upgraded \
            (HTTP/1.0).", body = Problem, content_type = "application/problem+json", headers(
            ("Upgrade" = String, description = "`websocket`."),
        )),
        (status = 503, description = "`unavailable`: credentials cannot be checked now.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn upgrade(
    State(state): State<NotifierState>,
    headers: HeaderMap,
    extensions: Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return refused(&rejection),
    };
    // axum takes any key; the RFC's form is what the description promises to check.
    if !headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|key| valid_key(key.as_bytes()))
    {
        return problem_response(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "`Sec-WebSocket-Key` is not 16 bytes in base64".to_owned(),
        );
    }
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let principal = match headers.get(header::AUTHORIZATION) {
        None if !state.auth.is_open() => None,
        header => {
            let header = match header.map(|value| value.to_str()).transpose() {
                Ok(header) => header,
                Err(_) => {
                    return AuthError::Unauthorized("the Authorization header is not ASCII")
                        .into_response();
                }
            };
            match state.auth.authorization_from(header, address).await {
                Ok(principal) => Some(principal),
                Err(error) => return error.into_response(),
            }
        }
    };
    upgrade
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| crate::serve(state, socket, principal, address))
}

fn refused(rejection: &WebSocketUpgradeRejection) -> Response {
    let detail = rejection.body_text();
    if let WebSocketUpgradeRejection::ConnectionNotUpgradable(ConnectionNotUpgradable { .. }) =
        rejection
    {
        let mut response =
            problem_response(StatusCode::UPGRADE_REQUIRED, "upgrade_required", detail);
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    problem_response(rejection.status(), "not_websocket", detail)
}

/// The notifier's routes with their description.
pub(crate) fn routes() -> OpenApiRouter<NotifierState> {
    OpenApiRouter::new()
        .routes(routes!(upgrade))
        .routes(routes!(crate::events::events))
}

/// The description of `/v1/ws` and `/v1/events`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn a_key_is_sixteen_bytes_in_base64() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(
            !valid_key(b"dGhlIHNhbXBsZSBub25jZR=="),
            "bits past the 16 bytes"
        );
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25j*Q=="));
        assert!(!valid_key(b""));
    }
}
