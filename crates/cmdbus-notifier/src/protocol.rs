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

/// `{"op":"command","command":<view>,"cursor":...}` around a command view the change feed
/// serialised once for every connection it goes to: what `ServerMessage::Command` would write.
pub(crate) fn command_frame(view_json: &str, cursor: Option<&str>) -> String {
    const HEAD: &str = r#"{"op":"command","command":"#;
    let cursor = cursor.and_then(|cursor| {
        serde_json::to_string(cursor)
            .inspect_err(|error| tracing::error!(%error, "cannot encode a cursor"))
            .ok()
    });
    let mut frame = String::with_capacity(
        HEAD.len() + view_json.len() + cursor.as_ref().map_or(0, |c| c.len() + 10) + 1,
    );
    frame.push_str(HEAD);
    frame.push_str(view_json);
    if let Some(cursor) = cursor {
        frame.push_str(r#","cursor":"#);
        frame.push_str(&cursor);
    }
    frame.push('}');
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_command_frame_is_what_serde_writes() {
        let view: CommandView = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "type": "demo.echo", "status": "success", "priority": 0,
            "attempt": 1, "max_attempts": 3, "version": 12, "result": {"deep": [1, "\"x\""]},
            "created_at": "2026-01-01T00:00:00Z",
        }))
        .expect("a view");
        let view_json = serde_json::to_string(&view).expect("view");
        for cursor in [None, Some("812:815:813"), Some("odd \"cursor\"")] {
            let serde = serde_json::to_string(&ServerMessage::Command {
                command: &view,
                cursor,
            })
            .expect("message");
            assert_eq!(command_frame(&view_json, cursor), serde);
        }
    }
}
