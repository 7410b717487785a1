//! The WebSocket protocol's messages (DESIGN.md section 6).

use cmdbus_domain::CommandView;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most ids one subscribe may name, and most one connection may hold.
pub(crate) const MAX_IDS_PER_MESSAGE: usize = 1_000;
pub(crate) const MAX_IDS_PER_CONNECTION: usize = 10_000;

/// Client → server.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum ClientMessage {
    /// Authenticate (the first message of a browser, which cannot set headers), or renew a
    /// token before it expires, keeping the socket and its subscriptions.
    Auth {
        /// An API key or a browser token.
        token: String,
    },
    /// Start receiving changes of these commands (or all), optionally resuming after `since`.
    Subscribe(Selector),
    /// Stop receiving changes of these commands (or all).
    Unsubscribe(Selector),
}

/// Which commands a (un)subscribe is about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Selector {
    /// Command ids.
    #[serde(default)]
    pub(crate) ids: Vec<Uuid>,
    /// Every command of the tenant.
    #[serde(default)]
    pub(crate) all: bool,
    /// Replay every matching change not yet seen at this cursor (one the server sent) first.
    pub(crate) since: Option<serde_json::Value>,
}

/// Server → client.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum ServerMessage<'a> {
    /// The credential was accepted.
    Authenticated {
        /// Whose commands this socket sees.
        tenant: &'a str,
        /// What the credential may do.
        scopes: cmdbus_auth::Scopes,
        /// When a token expires (Unix seconds); absent for keys.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// The token expires soon: send `{"op":"auth","token":...}` with a fresh one, or the
    /// socket closes at `expires_at` (code 4401) and the client resumes on a new one.
    Renew {
        /// Unix seconds.
        expires_at: i64,
    },
    /// The subscription took effect, and its replay (if `since` was given) is delivered.
    Subscribed {
        /// Resume from here later to miss nothing.
        cursor: &'a str,
    },
    /// A command changed (or, during a replay, its latest state).
    Command {
        /// The command after the change.
        command: &'a CommandView,
        /// The resume point, when it moved since the last message that carried one.
        #[serde(skip_serializing_if = "Option::is_none")]
        cursor: Option<&'a str>,
    },
    /// Changes were skipped (a replay too large, or the server fell behind): reload what you
    /// show, then go on from this cursor.
    Reset {
        /// Resume from here after reloading.
        cursor: &'a str,
    },
    /// A request was not understood; the socket stays open.
    Error {
        /// Stable snake_case code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
}
