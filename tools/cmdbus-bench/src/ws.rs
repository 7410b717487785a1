//! The WebSocket side: the watcher (one socket subscribed to everything, which tells the tracker
//! when each command's outcome is pushed) and crowds of idle subscribers (sockets that subscribe
//! and then only listen, as open browser tabs do).

use chrono::{DateTime, Utc};
use futures_util::{SinkExt as _, StreamExt as _, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    args::Server,
    report::Latency,
    track::{Outcome, Tracker},
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a handshake and its `subscribed` answer may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a push says about a finished command.
#[derive(Debug, Deserialize)]
struct Push {
    op: String,
    command: Option<View>,
}

#[derive(Debug, Deserialize)]
struct View {
    id: Uuid,
    status: String,
    finished_at: Option<DateTime<Utc>>,
}

/// The finished command a text message carries, if it carries one. Most messages are other
/// states of a command; they are skipped before being parsed.
fn finished(text: &str) -> Option<View> {
    if !text.contains("\"finished_at\":\"") {
        return None;
    }
    let push: Push = serde_json::from_str(text).ok()?;
    push.command
        .filter(|view| push.op == "command" && view.finished_at.is_some())
}

/// Why a socket could not be opened or was closed, in a few words (the report groups by them).
fn reason(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => format!("HTTP {}", response.status().as_u16()),
        tungstenite::Error::Io(error) => format!("io: {}", error.kind()),
        other => other.to_string().chars().take(60).collect(),
    }
}

fn close_reason(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed {} {}", u16::from(frame.code), frame.reason),
        None => "closed".to_owned(),
    }
}

async fn connect(server: &Server) -> Result<Socket, String> {
    let url = format!("{}/v1/ws", server.url.trim_end_matches('/')).replacen("http", "ws", 1);
    let mut request = url.into_client_request().map_err(|error| reason(&error))?;
    let bearer = format!("Bearer {}", server.key)
        .parse()
        .map_err(|_| "the key is not a valid header value".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|error| reason(&error))?;
    Ok(socket)
}

/// Sends a subscribe and waits for `subscribed`.
async fn subscribe(socket: &mut Socket, selector: Value) -> Result<(), String> {
    socket
        .send(Message::Text(selector.to_string().into()))
        .await
        .map_err(|error| reason(&error))?;
    let answer = async {
        while let Some(message) = socket.next().await {
            match message.map_err(|error| reason(&error))? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .map_err(|_| "a message that is not JSON".to_owned())?;
                    match value["op"].as_str() {
                        Some("subscribed") => return Ok(()),
                        Some("error") => return Err(format!("error {}", value["code"])),
                        _ => {}
                    }
                }
                Message::Close(frame) => return Err(close_reason(frame.as_ref())),
                _ => {}
            }
        }
        Err("closed".to_owned())
    };
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, answer)
        .await
        .map_err(|_| "no `subscribed` within 30 s".to_owned())?
}

/// One socket subscribed to every command, reporting each outcome to the tracker.
#[derive(Debug)]
pub(crate) struct Watcher {
    task: JoinHandle<()>,
    /// Why the socket ended, if it did.
    ended: Arc<Mutex<Option<String>>>,
    /// `reset` messages received: the server skipped changes.
    resets: Arc<AtomicU64>,
}

impl Watcher {
    pub(crate) async fn start(server: &Server, tracker: Arc<Tracker>) -> anyhow::Result<Self> {
        let mut socket = connect(server)
            .await
            .map_err(|error| anyhow::anyhow!("cannot open the watcher's WebSocket: {error}"))?;
        subscribe(&mut socket, json!({"op": "subscribe", "all": true}))
            .await
            .map_err(|error| anyhow::anyhow!("the watcher cannot subscribe: {error}"))?;
        let ended = Arc::new(Mutex::new(None));
        let resets = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (ended, resets) = (Arc::clone(&ended), Arc::clone(&resets));
            async move {
                let why = loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) => {
                            let received = Instant::now();
                            if let Some(view) = finished(text.as_str()) {
                                let outcome = Outcome {
                                    received,
                                    finished_at: view.finished_at,
                                    success: view.status == "success",
                                };
                                tracker.pushed(view.id, outcome);
                            } else if text.as_str().starts_with("{\"op\":\"reset\"") {
                                resets.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(Ok(Message::Close(frame))) => break close_reason(frame.as_ref()),
                        Some(Ok(_)) => {}
                        Some(Err(error)) => break reason(&error),
                        None => break "closed".to_owned(),
                    }
                };
                *ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
            }
        });
        Ok(Self {
            task,
            ended,
            resets,
        })
    }

    /// What went wrong with the watcher's socket, if anything: its figures are then incomplete.
    pub(crate) fn problem(&self) -> Option<String> {
        let ended = self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let resets = self.resets.load(Ordering::Relaxed);
        match (ended, resets) {
            (Some(why), _) => Some(format!("the watcher's socket ended: {why}")),
            (None, 0) => None,
            (None, resets) => Some(format!("the server reset the watcher {resets} times")),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many idle subscribers, and what they subscribe to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrowdSpec {
    pub(crate) sockets: usize,
    /// Of them, subscribed to every command.
    pub(crate) all: usize,
    /// Ids each of the others subscribes to.
    pub(crate) ids: usize,
    /// Handshakes at once while opening.
    pub(crate) parallel: usize,
}

/// Idle subscribers: open until dropped.
#[derive(Debug)]
pub(crate) struct Crowd {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Sockets open and subscribed.
    pub(crate) opened: usize,
    /// Sockets that could not be opened, by reason.
    pub(crate) refused: BTreeMap<String, usize>,
    /// How long opening took.
    pub(crate) took: Duration,
    /// Sockets the server closed since, by reason.
    closed: Arc<Mutex<BTreeMap<String, usize>>>,
    /// Delivery latency (success written → pushed) at each `all` subscriber.
    deliveries: Vec<Arc<Mutex<Latency>>>,
    recording: Arc<AtomicBool>,
}

impl Crowd {
    pub(crate) async fn open(server: &Server, spec: CrowdSpec) -> Self {
        let began = Instant::now();
        let mut opening = stream::iter(0..spec.sockets)
            .map(|n| {
                let all = n < spec.all;
                async move {
                    let mut socket = connect(server).await?;
                    let selector = if all {
                        json!({"op": "subscribe", "all": true})
                    } else {
                        // Fresh v7 ids: no command has them, so these sockets only watch.
                        let ids: Vec<Uuid> = (0..spec.ids.max(1)).map(|_| Uuid::now_v7()).collect();
                        json!({"op": "subscribe", "ids": ids})
                    };
                    subscribe(&mut socket, selector).await?;
                    Ok::<_, String>((socket, all))
                }
            })
            .buffer_unordered(spec.parallel.max(1));
        let mut crowd = Self {
            stop: CancellationToken::new(),
            tasks: Vec::with_capacity(spec.sockets),
            opened: 0,
            refused: BTreeMap::new(),
            took: Duration::ZERO,
            closed: Arc::default(),
            deliveries: Vec::new(),
            recording: Arc::default(),
        };
        while let Some(opened) = opening.next().await {
            match opened {
                Ok((socket, all)) => {
                    let delivery = all.then(|| {
                        let latency = Arc::new(Mutex::new(Latency::default()));
                        crowd.deliveries.push(Arc::clone(&latency));
                        latency
                    });
                    let task = listen(
                        socket,
                        delivery,
                        Arc::clone(&crowd.recording),
                        Arc::clone(&crowd.closed),
                        crowd.stop.clone(),
                    );
                    crowd.tasks.push(tokio::spawn(task));
                    crowd.opened += 1;
                }
                Err(why) => *crowd.refused.entry(why).or_default() += 1,
            }
        }
        crowd.took = began.elapsed();
        crowd
    }

    /// Starts (afresh) or stops recording delivery latency.
    pub(crate) fn record(&self, on: bool) {
        if on {
            for latency in &self.deliveries {
                *latency.lock().unwrap_or_else(PoisonError::into_inner) = Latency::default();
            }
        }
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Delivery latency over every `all` subscriber.
    pub(crate) fn delivery(&self) -> Latency {
        let mut merged = Latency::default();
        for latency in &self.deliveries {
            merged.merge(&latency.lock().unwrap_or_else(PoisonError::into_inner));
        }
        merged
    }

    /// Sockets the server closed so far, by reason.
    pub(crate) fn closed_by_server(&self) -> BTreeMap<String, usize> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes every socket.
    pub(crate) async fn close(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Reads one idle socket until it is stopped or closed (reading is also what answers the
/// server's pings).
async fn listen(
    mut socket: Socket,
    delivery: Option<Arc<Mutex<Latency>>>,
    recording: Arc<AtomicBool>,
    closed: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: CancellationToken,
) {
    let why = loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let Some(delivery) = &delivery else { continue };
                if !recording.load(Ordering::Relaxed) {
                    continue;
                }
                if let Some(finished_at) = finished(text.as_str())
                    .filter(|view| view.status == "success")
                    .and_then(|view| view.finished_at)
                {
                    let latency = (Utc::now() - finished_at).to_std().unwrap_or_default();
                    delivery
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(latency);
                }
            }
            Some(Ok(Message::Close(frame))) => break close_reason(frame.as_ref()),
            Some(Ok(_)) => {}
            Some(Err(error)) => break reason(&error),
            None => break "closed".to_owned(),
        }
    };
    *closed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(why)
        .or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_commands_are_read_from_pushes() {
        let id = Uuid::now_v7();
        let done = format!(
            r#"{{"op":"command","command":{{"id":"{id}","type":"demo.noop","status":"success","version":9,"created_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01.5Z"}},"cursor":"1:2:"}}"#
        );
        let view = finished(&done).expect("a finished command");
        assert_eq!(view.id, id);
        assert_eq!(view.status, "success");
        assert_eq!(
            view.finished_at.map(|at| at.timestamp_millis()),
            Some(1_767_225_601_500)
        );
        let running = done.replace(
            r#""finished_at":"2026-01-01T00:00:01.5Z""#,
            r#""finished_at":null"#,
        );
        assert!(finished(&running).is_none());
        assert!(finished(r#"{"op":"subscribed","cursor":"1:2:"}"#).is_none());
        assert!(finished(r#"{"op":"command","finished_at":"x"}"#).is_none());
    }
}
