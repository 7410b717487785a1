//! The notifier role: the WebSocket hub at `/v1/ws`. It relays every state change from the
//! change feed to the clients subscribed to it. PostgreSQL is the source of every push: the
//! notifier reads every change from it (the events fanout is only the fast path), and resumes a
//! client that was away from a cursor — a snapshot — that cannot skip a change.

mod access;
mod keys;
mod openapi;
mod protocol;
mod session;
mod tail;

use axum::{Router, extract::ws::WebSocket};
use cmdbus_auth::{Authenticator, Principal};
use cmdbus_bus::ChangeFeed;
use cmdbus_store::Db;
use std::{future::Future, pin::Pin, time::Duration};
use tokio_util::sync::CancellationToken;

pub use keys::watch_keys;
pub use openapi::openapi;
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
    pub(crate) pool: Db,
    pub(crate) feed: ChangeFeed,
    pub(crate) auth: Authenticator,
    pub(crate) config: NotifierConfig,
    pub(crate) shutdown: CancellationToken,
    /// The keys live sockets rest on, checked for revocation by `watch_keys`.
    pub(crate) keys: keys::KeyWatch,
}

impl NotifierState {
    /// State over a pool, this process's change feed and its authenticator; connections close
    /// on `shutdown`.
    pub fn new(
        pool: Db,
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
            keys: keys::KeyWatch::default(),
        }
    }
}

/// The `/v1/ws` route.
pub fn router(state: NotifierState) -> Router {
    let (router, _) = openapi::routes().split_for_parts();
    router.with_state(state)
}

/// Serves one upgraded connection, for `principal` when the upgrade carried a credential. The
/// session's state lives behind one pointer, so axum's task for the upgrade stays small: an
/// idle socket holds the session once, not a copy of it inside a larger task.
fn serve(
    state: NotifierState,
    socket: WebSocket,
    principal: Option<Principal>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(session::serve(state, socket, principal))
}
