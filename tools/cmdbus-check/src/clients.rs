//! WebSocket clients of the notifiers: each subscribes to everything, keeps the latest view of
//! every command it is told about, drops its connection at random moments and resumes on any
//! notifier from the last cursor it received, as the protocol asks.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Mutex, atomic::Ordering},
    time::Duration,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    procs::NodeRole,
    shared::{Shared, pick},
};

/// The last view of a command a client holds: what the checks compare with PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) version: i64,
    pub(crate) status: String,
    pub(crate) attempt: i64,
}

/// One client's log, reduced to what it ends up believing, plus what went wrong on the wire.
#[derive(Debug, Default)]
pub(crate) struct ClientLog {
    pub(crate) views: Mutex<HashMap<Uuid, Seen>>,
    pub(crate) problems: Mutex<Vec<String>>,
    /// Fires at the first `subscribed`.
    pub(crate) subscribed: CancellationToken,
}

impl ClientLog {
    pub(crate) fn views(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Seen>> {
        self.views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn problem(&self, problem: String) {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(problem);
    }

    /// Keeps a view only if it is newer than the one held.
    fn merge(&self, view: &Value) {
        let (Some(id), Some(version)) = (
            view["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()),
            view["version"].as_i64(),
        ) else {
            self.problem(format!("a view without id or version: {view}"));
            return;
        };
        let seen = Seen {
            version,
            status: view["status"].as_str().unwrap_or_default().to_owned(),
            attempt: view["attempt"].as_i64().unwrap_or(-1),
        };
        let mut views = self.views();
        if views.get(&id).is_none_or(|held| held.version < version) {
            views.insert(id, seen);
        }
    }
}

/// Where a client resumes: the last cursor the server handed out (opaque).
#[derive(Debug, Default)]
struct Resume(Option<Value>);

impl Resume {
    fn advance_to(&mut self, cursor: &Value) {
        if cursor.is_string() {
            self.0 = Some(cursor.clone());
        }
    }
}

/// Runs one client until `end`; drops at random moments until `calm`.
pub(crate) async fn client(
    shared: &Shared,
    log: &ClientLog,
    mut rng: fastrand::Rng,
    calm: CancellationToken,
    end: CancellationToken,
) {
    let mut resume = Resume::default();
    while !end.is_cancelled() {
        let Some(notifier) = pick(&mut rng, &shared.cluster.members(Some(NodeRole::Notifier)))
        else {
            tokio::time::sleep(Duration::from_millis(200)).await; // waiting for a respawn
            continue;
        };
        let url = format!("ws://127.0.0.1:{}/v1/ws", notifier.port);
        let Ok(mut request) = url.as_str().into_client_request() else {
            return;
        };
        if let Ok(bearer) = format!("Bearer {}", shared.key).parse() {
            request.headers_mut().insert("authorization", bearer);
        }
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(request),
        )
        .await;
        let Ok(Ok((mut socket, _))) = connected else {
            tokio::time::sleep(Duration::from_millis(200)).await; // the notifier may be dying
            continue;
        };
        let mut subscribe = json!({"op": "subscribe", "all": true});
        if let Some(cursor) = &resume.0 {
            subscribe["since"] = cursor.clone();
        }
        if socket
            .send(Message::Text(subscribe.to_string().into()))
            .await
            .is_err()
        {
            continue;
        }
        let drop_at = Instant::now() + Duration::from_millis(rng.u64(2_000..12_000));
        loop {
            tokio::select! {
                _ = end.cancelled() => {
                    let _ = socket.close(None).await;
                    return;
                }
                _ = tokio::time::sleep_until(drop_at), if !calm.is_cancelled() => {
                    let _ = socket.close(None).await;
                    break;
                }
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<Value>(text.as_str()) {
                            Ok(message) => on_message(shared, log, &mut resume, &message).await,
                            Err(error) => log.problem(format!("not JSON ({error}): {text}")),
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        shared.counts.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

async fn on_message(shared: &Shared, log: &ClientLog, resume: &mut Resume, message: &Value) {
    match message["op"].as_str() {
        Some("subscribed") => {
            log.subscribed.cancel();
            resume.advance_to(&message["cursor"]);
        }
        Some("command") => {
            log.merge(&message["command"]);
            resume.advance_to(&message["cursor"]);
        }
        Some("reset") => {
            shared.counts.resets.fetch_add(1, Ordering::Relaxed);
            match reload(shared, log).await {
                Ok(()) => resume.advance_to(&message["cursor"]),
                Err(error) => log.problem(format!("reload after reset failed: {error}")),
            }
        }
        _ => log.problem(format!("unexpected message {message}")),
    }
}

/// After a `reset`: reads every command over REST (any api), page by page.
async fn reload(shared: &Shared, log: &ClientLog) -> anyhow::Result<()> {
    let api = shared
        .cluster
        .members(Some(NodeRole::Api))
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no api up"))?;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://127.0.0.1:{}/v1/commands?limit=500", api.port);
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = shared
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for view in page["items"].as_array().into_iter().flatten() {
            log.merge(view);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}
