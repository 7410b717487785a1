//! One WebSocket connection: its subscriptions, its resume, its pings, and the bounds that keep
//! a slow client from growing memory.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cmdbus_domain::{CommandView, DEFAULT_TENANT, Event};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};
use tokio::{sync::broadcast::error::RecvError, time::Instant};
use uuid::Uuid;

use crate::{
    NotifierState,
    protocol::{
        ClientMessage, MAX_IDS_PER_CONNECTION, MAX_IDS_PER_MESSAGE, Selector, ServerMessage,
    },
};

/// Rows read per query during a replay.
const REPLAY_PAGE: i64 = 1_000;

/// Why a connection ends early.
#[derive(Debug)]
enum Closed {
    /// The peer went away or the socket failed.
    Peer,
    /// We close it, with this code and reason.
    Close(u16, &'static str),
}

/// What this connection is subscribed to.
#[derive(Debug, Default)]
struct Subscriptions {
    all: bool,
    ids: HashSet<Uuid>,
    /// The version last sent per command during replays, to drop the live duplicates.
    replayed: HashMap<Uuid, i64>,
}

impl Subscriptions {
    fn wants(&self, id: Uuid) -> bool {
        self.all || self.ids.contains(&id)
    }
}

struct Connection {
    state: NotifierState,
    sink: SplitSink<WebSocket, Message>,
    subscriptions: Subscriptions,
    tenant: String,
}

pub(crate) async fn serve(state: NotifierState, socket: WebSocket) {
    // Subscribe to live changes before anything else, so that a replay read later can only
    // overlap with them (duplicates are dropped), never leave a gap.
    let mut live = state.feed.subscribe();
    let connections = metrics::gauge!("cmdbus_ws_connections");
    connections.increment(1.0);
    let (sink, mut stream) = socket.split();
    let ping_interval = state.config.ping_interval;
    let mut connection = Connection {
        state,
        sink,
        subscriptions: Subscriptions::default(),
        tenant: DEFAULT_TENANT.to_owned(),
    };
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    let mut last_heard = Instant::now();
    let shutdown = connection.state.shutdown.clone();
    let closed = loop {
        let step = tokio::select! {
            _ = shutdown.cancelled() => Err(Closed::Close(1001, "server shutting down")),
            message = stream.next() => match message {
                Some(Ok(message)) => {
                    last_heard = Instant::now();
                    connection.on_message(message).await
                }
                Some(Err(_)) | None => Err(Closed::Peer),
            },
            event = live.recv() => match event {
                Ok(event) => connection.on_event(&event).await,
                // The client could not keep up with the feed: bounded memory beats a silent gap.
                Err(RecvError::Lagged(_)) => Err(Closed::Close(1013, "too slow; resume with since")),
                Err(RecvError::Closed) => Err(Closed::Close(1011, "feed closed")),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_interval * 2 {
                    Err(Closed::Peer)
                } else {
                    connection.send(Message::Ping(Default::default())).await
                }
            }
        };
        if let Err(closed) = step {
            break closed;
        }
    };
    connections.decrement(1.0);
    if let Closed::Close(code, reason) = closed {
        if code == 1013 {
            metrics::counter!("cmdbus_ws_slow_disconnects_total").increment(1);
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = connection.send(Message::Close(Some(frame))).await;
    }
}

impl Connection {
    async fn send(&mut self, message: Message) -> Result<(), Closed> {
        match tokio::time::timeout(self.state.config.send_timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Closed::Peer),
            Err(_) => Err(Closed::Close(1013, "too slow")),
        }
    }

    async fn send_json(&mut self, message: &ServerMessage<'_>) -> Result<(), Closed> {
        match serde_json::to_string(message) {
            Ok(text) => self.send(Message::Text(text.into())).await,
            Err(error) => {
                tracing::error!(%error, "cannot encode message");
                Ok(())
            }
        }
    }

    async fn send_error(&mut self, code: &'static str, message: String) -> Result<(), Closed> {
        self.send_json(&ServerMessage::Error { code, message })
            .await
    }

    async fn on_event(&mut self, event: &Arc<Event>) -> Result<(), Closed> {
        let command = &event.command;
        if event.tenant != self.tenant || !self.subscriptions.wants(command.id) {
            return Ok(());
        }
        if let Some(&replayed) = self.subscriptions.replayed.get(&command.id)
            && replayed >= command.version
        {
            return Ok(()); // already sent by the replay
        }
        self.send_json(&ServerMessage::Command { command }).await
    }

    async fn on_message(&mut self, message: Message) -> Result<(), Closed> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .send_error("bad_request", "send JSON text frames".to_owned())
                    .await;
            }
            Message::Close(_) => return Err(Closed::Peer),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(ClientMessage::Subscribe(selector)) => self.subscribe(selector).await,
            Ok(ClientMessage::Unsubscribe(selector)) => {
                if selector.all {
                    self.subscriptions.all = false;
                }
                for id in &selector.ids {
                    self.subscriptions.ids.remove(id);
                }
                Ok(())
            }
            Err(error) => self.send_error("bad_request", error.to_string()).await,
        }
    }

    async fn subscribe(&mut self, selector: Selector) -> Result<(), Closed> {
        if !selector.all && selector.ids.is_empty() {
            return self
                .send_error("bad_request", "name `ids` or `all: true`".to_owned())
                .await;
        }
        if selector.ids.len() > MAX_IDS_PER_MESSAGE
            || self.subscriptions.ids.len() + selector.ids.len() > MAX_IDS_PER_CONNECTION
        {
            return self
                .send_error("too_many_ids", format!("at most {MAX_IDS_PER_MESSAGE} ids per message and {MAX_IDS_PER_CONNECTION} per connection"))
                .await;
        }
        if selector.since.is_some_and(|since| since < 0) {
            return self
                .send_error("bad_request", "`since` must be a version (>= 0)".to_owned())
                .await;
        }
        self.subscriptions.all |= selector.all;
        self.subscriptions.ids.extend(selector.ids.iter().copied());
        let version = match cmdbus_store::current_version(&self.state.pool, &self.tenant).await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(%error, "cannot read the current version");
                return self
                    .send_error(
                        "unavailable",
                        "the status database is unavailable".to_owned(),
                    )
                    .await;
            }
        };
        self.send_json(&ServerMessage::Subscribed { version })
            .await?;
        if let Some(since) = selector.since {
            let ids = (!selector.all).then_some(selector.ids.as_slice());
            self.replay(since, ids).await?;
        }
        Ok(())
    }

    /// Sends the latest state of every matching command changed after `since`.
    async fn replay(&mut self, mut since: i64, ids: Option<&[Uuid]>) -> Result<(), Closed> {
        loop {
            let rows = match cmdbus_store::changed_since(
                &self.state.pool,
                Some(&self.tenant),
                since,
                ids,
                REPLAY_PAGE,
            )
            .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "cannot replay");
                    // Better no socket than a socket with a silent gap: the client resumes.
                    return Err(Closed::Close(1011, "cannot replay; resume with since"));
                }
            };
            let full = rows.len() as i64 == REPLAY_PAGE;
            for row in &rows {
                since = since.max(row.version);
                let view: CommandView = match row.view() {
                    Ok(view) => view,
                    Err(error) => {
                        tracing::error!(%error, "cannot build view");
                        continue;
                    }
                };
                self.subscriptions.replayed.insert(view.id, view.version);
                self.send_json(&ServerMessage::Command { command: &view })
                    .await?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}
