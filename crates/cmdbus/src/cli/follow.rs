//! Following commands live: `submit --wait` and `watch`. Both subscribe on the WebSocket
//! `/v1/ws` before they read the current state, so no change falls between the read and the
//! stream (docs/protocol.md), and keep a change only if its version is higher than the one held.
//! `submit --wait` falls back to the long-poll `GET /v1/commands/{id}?wait=N` when the socket
//! fails; `watch` reconnects and resumes from the last cursor it received (and follows the
//! change feed `GET /v1/changes` when it never got a socket).

use super::{
    CliError, Output, http,
    http::{Api, Polled},
};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::{collections::HashMap, time::Duration};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _},
};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Seconds one long-poll waits for a change.
const POLL_SECS: u64 = 30;
/// How long a socket may stay silent before it counts as dead.
const SILENCE: Duration = Duration::from_secs(60);
/// The longest pause between two reconnects of `watch`.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the server said on the socket, as far as a follower cares.
#[derive(Debug)]
enum Event {
    /// The subscription took effect (after its replay).
    Subscribed { cursor: Option<String> },
    /// A command changed.
    Command { view: Value, cursor: Option<String> },
    /// Changes were skipped: go on from this cursor.
    Reset { cursor: Option<String> },
    /// The server refused a request on the socket.
    Refused(String),
}

/// Follows the command `view` describes until it ends, showing each change; returns its last view.
pub(crate) async fn until_done(
    api: &Api,
    view: &Value,
    output: &Output,
) -> Result<Value, CliError> {
    let id = id_of(view)?;
    let mut held = view.clone();
    let bar = output.progress(&held);
    if !is_terminal(&held)
        && let Err(reason) = over_socket(api, id, &mut held, &mut |view| bar.show(view)).await
    {
        bar.note(&format!("WebSocket unavailable ({reason}); long-polling"));
    }
    while !is_terminal(&held) {
        if let Polled::Changed(view) = api.poll(id, version(&held), POLL_SECS).await?
            && version(&view) > version(&held)
        {
            bar.show(&view);
            held = view;
        }
    }
    bar.finish(&held);
    Ok(held)
}

/// Follows `id` on the WebSocket until it ends; an error says why the socket gave up.
async fn over_socket(
    api: &Api,
    id: Uuid,
    held: &mut Value,
    show: &mut dyn FnMut(&Value),
) -> Result<(), String> {
    let mut socket = connect(api).await.map_err(|error| error.to_string())?;
    send(&mut socket, json!({"op": "subscribe", "ids": [id]})).await?;
    loop {
        let event = next(&mut socket).await?;
        let view = match event {
            // Subscribed: from now on every change comes over the socket; read what came before.
            Event::Subscribed { .. } | Event::Reset { .. } => {
                api.get(id).await.map_err(|error| error.to_string())?
            }
            Event::Command { view, .. } => view,
            Event::Refused(reason) => return Err(reason),
        };
        if version(&view) > version(held) {
            show(&view);
            *held = view;
        }
        if is_terminal(held) {
            return Ok(());
        }
    }
}

/// `watch`: prints every change of `ids` (or of everything the credential reads) until Ctrl-C
/// or, given ids, until each of them has ended. A dropped socket is reconnected and resumed.
/// With `since`, every change after that cursor is replayed first.
pub(crate) async fn watch(
    api: &Api,
    ids: &[Uuid],
    since: Option<String>,
    output: &Output,
) -> Result<(), CliError> {
    let subscribe = if ids.is_empty() {
        json!({"op": "subscribe", "all": true})
    } else {
        json!({"op": "subscribe", "ids": ids})
    };
    let mut held: HashMap<String, Value> = HashMap::new();
    // Given a cursor, the replay shows what came before; without, the first read does.
    let mut read_first = since.is_none();
    let mut cursor = since;
    let mut connected = false;
    let mut failures = 0u32;
    loop {
        let mut socket = match connect(api).await {
            Ok(socket) => socket,
            // Without a first connection, follow the change feed instead — unless the server
            // refused the credential, which the feed would refuse too.
            Err(error) if !connected && !refuses_credential(&error) => {
                output.note(&format!(
                    "WebSocket unavailable ({error}); following the change feed"
                ));
                return watch_by_changes(api, ids, cursor, output).await;
            }
            Err(error) if !connected => return Err(error),
            Err(CliError::Problem {
                title,
                code,
                detail,
            }) => {
                return Err(CliError::Problem {
                    title,
                    code,
                    detail,
                });
            }
            Err(error) => {
                failures += 1;
                pause(output, failures, &error.to_string()).await;
                continue;
            }
        };
        let mut message = subscribe.clone();
        if let Some(cursor) = &cursor {
            message["since"] = json!(cursor);
        }
        connected = true;
        let ended = follow_socket(
            api,
            &mut socket,
            message,
            (ids, read_first),
            &mut held,
            &mut cursor,
            output,
        )
        .await;
        // Once subscribed, a reconnect resumes from the cursor instead of reading again.
        read_first = read_first && cursor.is_none();
        match ended {
            Ok(()) => return Ok(()),
            Err(Stop::Fatal(error)) => return Err(error),
            Err(Stop::Dropped(reason)) => {
                failures = 1;
                pause(output, failures, &reason).await;
            }
        }
    }
}

/// `watch` without a WebSocket: the change feed `GET /v1/changes`, one request at a time for
/// every id (or everything), each answered when a change commits. Without `since`, it starts
/// from now and shows the ids' current state; a cursor the server cannot serve (`reset`) starts
/// it over the same way.
async fn watch_by_changes(
    api: &Api,
    ids: &[Uuid],
    since: Option<String>,
    output: &Output,
) -> Result<(), CliError> {
    let mut held: HashMap<Uuid, i64> = HashMap::new();
    let mut ended: HashMap<Uuid, bool> = HashMap::new();
    let mut cursor = since;
    loop {
        if cursor.is_none() {
            let now = api.changes(None, 0, ids).await?;
            cursor = now["cursor"].as_str().map(str::to_owned);
            for &id in ids {
                let view = api.get(id).await?;
                show_newer(&view, &mut held, &mut ended, output);
            }
        }
        if !ids.is_empty() && ids.iter().all(|id| ended.get(id) == Some(&true)) {
            return Ok(());
        }
        let page = match api.changes(cursor.as_deref(), POLL_SECS, ids).await {
            Ok(page) => page,
            Err(CliError::Problem { code, .. }) if code == "reset" => {
                output.note("changes were skipped (reset); reading again from now");
                cursor = None;
                continue;
            }
            Err(error) => return Err(error),
        };
        for view in page["changes"].as_array().into_iter().flatten() {
            show_newer(view, &mut held, &mut ended, output);
        }
        if let Some(next) = page["cursor"].as_str() {
            cursor = Some(next.to_owned());
        }
    }
}

/// The server refused who is asking (401/403): no other transport would accept it.
fn refuses_credential(error: &CliError) -> bool {
    matches!(error, CliError::Problem { code, .. } if code == "unauthorized" || code == "forbidden")
}

/// Shows `view` if it is newer than the version held of its command.
fn show_newer(
    view: &Value,
    held: &mut HashMap<Uuid, i64>,
    ended: &mut HashMap<Uuid, bool>,
    output: &Output,
) {
    let Ok(id) = id_of(view) else { return };
    if held.get(&id).is_some_and(|&known| known >= version(view)) {
        return;
    }
    held.insert(id, version(view));
    ended.insert(id, is_terminal(view));
    output.change(view);
}

/// Why a socket stopped following.
enum Stop {
    /// Reconnect and resume.
    Dropped(String),
    /// Give up.
    Fatal(CliError),
}

/// One connection of `watch`: subscribes, shows the replay and the live changes; `read_first`:
/// read the `ids`' current state once subscribed (there is no cursor to replay from).
async fn follow_socket(
    api: &Api,
    socket: &mut Socket,
    subscribe: Value,
    (ids, read_first): (&[Uuid], bool),
    held: &mut HashMap<String, Value>,
    cursor: &mut Option<String>,
    output: &Output,
) -> Result<(), Stop> {
    send(socket, subscribe).await.map_err(Stop::Dropped)?;
    let keep = |view: Value, held: &mut HashMap<String, Value>| {
        let key = view["id"].as_str().unwrap_or_default().to_owned();
        if held
            .get(&key)
            .is_none_or(|old| version(&view) > version(old))
        {
            output.change(&view);
            held.insert(key, view);
        }
    };
    loop {
        match next(socket).await.map_err(Stop::Dropped)? {
            Event::Subscribed { cursor: at } => {
                *cursor = at.or(cursor.take());
                output.note(&format!(
                    "watching from cursor {}",
                    cursor.as_deref().unwrap_or("-")
                ));
                // Subscribed first, then read: what came before the stream is shown once.
                if read_first {
                    for id in ids {
                        keep(api.get(*id).await.map_err(Stop::Fatal)?, held);
                    }
                }
            }
            Event::Command { view, cursor: at } => {
                if at.is_some() {
                    *cursor = at;
                }
                keep(view, held);
            }
            Event::Reset { cursor: at } => {
                output.note("the server skipped changes (reset): reading the current state");
                *cursor = at;
                for id in ids {
                    keep(api.get(*id).await.map_err(Stop::Fatal)?, held);
                }
            }
            Event::Refused(reason) => {
                return Err(Stop::Fatal(CliError::Transport(reason)));
            }
        }
        if !ids.is_empty()
            && ids
                .iter()
                .all(|id| held.get(&id.to_string()).is_some_and(is_terminal))
        {
            return Ok(());
        }
    }
}

async fn pause(output: &Output, failures: u32, reason: &str) {
    let wait = (Duration::from_millis(250) * 2u32.saturating_pow(failures.min(5))).min(MAX_BACKOFF);
    output.note(&format!(
        "connection lost ({reason}); reconnecting in {wait:?}"
    ));
    tokio::time::sleep(wait).await;
}

/// Opens `/v1/ws` with the credential on the upgrade.
async fn connect(api: &Api) -> Result<Socket, CliError> {
    let url = api.ws_url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| CliError::Usage(format!("{url}: {error}")))?;
    if let Some(key) = api.key() {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| CliError::Usage("the key is not a valid header value".to_owned()))?;
        request.headers_mut().insert("authorization", value);
    }
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Err(_) => Err(CliError::Transport(format!("{url}: no answer within 10 s"))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let body = response.body().as_deref().unwrap_or_default();
            Err(http::problem(body).unwrap_or_else(|| {
                CliError::Transport(format!("{url}: the upgrade was answered {status}"))
            }))
        }
        Ok(Err(error)) => Err(CliError::Transport(format!("cannot reach {url}: {error}"))),
    }
}

async fn send(socket: &mut Socket, message: Value) -> Result<(), String> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .map_err(|error| error.to_string())
}

/// The next message that matters; an error when the socket ends or goes silent (the server pings
/// every 20 s, so a minute without a frame is a dead connection).
async fn next(socket: &mut Socket) -> Result<Event, String> {
    loop {
        let frame = tokio::time::timeout(SILENCE, socket.next()).await;
        let message = match frame.map_err(|_| format!("nothing heard for {SILENCE:?}"))? {
            None => return Err("the server closed the connection".to_owned()),
            Some(Err(error)) => return Err(error.to_string()),
            Some(Ok(message)) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                return Err(match frame {
                    Some(frame) => format!("closed {}: {}", u16::from(frame.code), frame.reason),
                    None => "closed".to_owned(),
                });
            }
            _ => continue,
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let cursor = message["cursor"].as_str().map(str::to_owned);
        match message["op"].as_str() {
            Some("subscribed") => return Ok(Event::Subscribed { cursor }),
            Some("command") if message["command"].is_object() => {
                return Ok(Event::Command {
                    view: message["command"].clone(),
                    cursor,
                });
            }
            Some("reset") => return Ok(Event::Reset { cursor }),
            Some("error") => {
                return Ok(Event::Refused(format!(
                    "{}: {}",
                    message["code"].as_str().unwrap_or("error"),
                    message["message"].as_str().unwrap_or_default()
                )));
            }
            // `authenticated`, `renew` (a fixed credential cannot renew; at expiry the socket
            // closes and the error says so).
            _ => continue,
        }
    }
}

fn id_of(view: &Value) -> Result<Uuid, CliError> {
    view["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| CliError::Transport("the server's view has no id".to_owned()))
}

pub(crate) fn version(view: &Value) -> i64 {
    view["version"].as_i64().unwrap_or(i64::MIN)
}

pub(crate) fn is_terminal(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("success" | "fail" | "cancelled" | "discarded")
    )
}
