//! The notifier role: the WebSocket hub at `/v1/ws` and the Server-Sent Events stream at
//! `/v1/events`, the push transports of the change feed (`cmdbus-feed`). It relays every state change from the feed to the clients subscribed to it,
//! and resumes a client that was away from its cursor by the feed's resume rule.
//!
//! # Layout
//!
//! - `lib.rs` (here): the settings, `NotifierState` (what every connection shares), the route,
//!   and `watch_keys`, the process's revocation task.
//! - `openapi.rs`: the `/v1/ws` upgrade handler with its OpenAPI description; hands each
//!   upgraded socket to `serve` (here), which boxes `session::serve`. It registers `events.rs`
//!   too: `GET /v1/events`, the same feed as Server-Sent Events, whose handler reads the
//!   request and hands the stream to `session::open_stream`.
//! - `session.rs`: one connection's loop: messages, deliveries from its `Subscriber`, pings,
//!   renewals; `session/outlet.rs`: where its messages go (WebSocket frames or SSE events);
//!   `session/stream.rs`: an SSE stream's loop, the same steps without client messages; `session/subscribe.rs`: its `subscribe`, which calls the feed's resume rule
//!   (`cmdbus_feed::{parse_since, Replay, Position}`) and only sends what it says.
//! - `protocol.rs`: the wire messages.
//! - `access.rs`: a connection's credential; `keys.rs`: the key watch that ends the sockets of
//!   a revoked key; `close.rs`: close codes and `Refused`, which both of them and the session
//!   speak.
//!
//! Calls go down: `openapi` → `events` → `session` → `access` → `keys` → `close`; the feed and the
//! authenticator come in through `NotifierState`.

mod access;
mod close;
mod events;
mod keys;
mod openapi;
mod protocol;
mod session;

use axum::{Router, extract::ws::WebSocket};
use cmdbus_auth::{Authenticator, Principal};
use cmdbus_feed::ChangeFeed;
use cmdbus_store::Db;
use std::{future::Future, net::IpAddr, pin::Pin, time::Duration};
use tokio_util::sync::CancellationToken;

pub use openapi::openapi;

/// Notifier settings.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// How often the server pings; a peer silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// A send that takes longer than this means the client is too slow: it is disconnected.
    pub send_timeout: Duration,
    /// How long a new socket may stay unauthenticated before it is closed (`4401`).
    pub auth_within: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(5),
            auth_within: Duration::from_secs(5),
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
    /// State over a pool, this process's change feed and its authenticator; on `shutdown`,
    /// connections send what is queued for them and close with `1012` (the binary fires it
    /// once its workers drained and the feed caught up, not at the signal).
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

/// Checks the keys of this process's sockets for revocation until shutdown, and ends the
/// sockets of each that no longer holds.
pub async fn watch_keys(state: NotifierState) {
    state.keys.run(state.auth, state.shutdown).await;
}

/// The `/v1/ws` and `/v1/events` routes.
pub fn router(state: NotifierState) -> Router {
    let (router, _) = openapi::routes().split_for_parts();
    router.with_state(state)
}

/// Serves one upgraded connection from `address`, for `principal` when the upgrade carried a
/// credential. The
/// session's state lives behind one pointer, so axum's task for the upgrade stays small: an
/// idle socket holds the session once, not a copy of it inside a larger task.
fn serve(
    state: NotifierState,
    socket: WebSocket,
    principal: Option<Principal>,
    address: Option<IpAddr>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(session::serve(state, socket, principal, address))
}
