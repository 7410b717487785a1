//! The notifier role: the WebSocket hub at `/v1/ws`. It relays every state change from the
//! change feed to the clients subscribed to it. PostgreSQL is the source of every push: the
//! notifier reads every change from it (the events fanout is only the fast path), and resumes a
//! client that was away from a cursor — a snapshot — that cannot skip a change.

mod access;
mod protocol;
mod session;
mod tail;

use axum::{
    Router,
    extract::{State, WebSocketUpgrade},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
    routing::get,
};
use cmdbus_auth::{AuthError, Authenticator};
use cmdbus_bus::ChangeFeed;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use tail::follow_database;

/// Notifier settings.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// How often the server pings; a peer silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// A send that takes longer than this means the client is too slow: it is disconnected.
    pub send_timeout: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(5),
        }
    }
}

/// What every connection shares.
#[derive(Debug, Clone)]
pub struct NotifierState {
    pub(crate) pool: PgPool,
    pub(crate) feed: ChangeFeed,
    pub(crate) auth: Authenticator,
    pub(crate) config: NotifierConfig,
    pub(crate) shutdown: CancellationToken,
}

impl NotifierState {
    /// State over a pool, this process's change feed and its authenticator; connections close
    /// on `shutdown`.
    pub fn new(
        pool: PgPool,
        feed: ChangeFeed,
        auth: Authenticator,
        config: NotifierConfig,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            pool,
            feed,
            auth,
            config,
            shutdown,
        }
    }
}

/// The `/v1/ws` route.
pub fn router(state: NotifierState) -> Router {
    Router::new()
        .route("/v1/ws", get(upgrade))
        .with_state(state)
}

/// Largest frame and message a client may send: requests are small JSON. The frame bound is
/// checked on the frame's header, so a client cannot make us buffer a large frame first.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Read buffer of a connection, allocated up front: clients send little, and there may be many.
const READ_BUFFER: usize = 8 * 1024;

/// Bytes queued for a client past which a write fails (the session then drops the client).
/// Messages are sent one at a time, each flushed before the next, and pongs to the client's
/// pings are bounded by the session's ping budget; so this only has to hold the largest message
/// we send (a command view with its payload and result), and caps whatever else might queue.
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;

/// The upgrade. A client that can set headers authenticates with `Authorization: Bearer` here
/// (refused with 401 before the upgrade); a browser, which cannot, sends `{"op":"auth"}` first.
async fn upgrade(
    State(state): State<NotifierState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
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
            match state.auth.authorization(header).await {
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
        .on_upgrade(move |socket| session::serve(state, socket, principal))
}
