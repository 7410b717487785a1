//! One WebSocket connection: its subscriptions, its resume, its cursor, its pings, and the bounds
//! that keep a slow client from growing memory.
//!
//! The cursor a client holds always means "every change committed in this snapshot that matches
//! my subscriptions has been sent to me". The connection receives the change feed from before
//! anything else happens; the feed's horizon moves only after every change it covers was
//! broadcast; so the latest horizon the connection has received is always a cursor it may hand
//! out, and it goes along with the next message that leaves.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cmdbus_auth::{Budget, Principal, Reach};
use cmdbus_bus::Change;
use cmdbus_domain::{CommandView, Event};
use cmdbus_store::{Cursor, Scope};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};
use tokio::{sync::broadcast::error::RecvError, time::Instant};
use uuid::Uuid;

use crate::{
    NotifierState,
    access::{AUTH_WITHIN, Access, CLOSE_UNAUTHORIZED, RECHECK_EVERY, Refused},
    protocol::{
        ClientMessage, MAX_IDS_PER_CONNECTION, MAX_IDS_PER_MESSAGE, Selector, ServerMessage,
    },
};

/// Most changes one resume replays; past it the client is told to reload (`reset`).
const REPLAY_LIMIT: i64 = 5_000;

/// Commands a replay reads at once: a page of whole rows (payloads and results of up to a few
/// hundred KiB each) is what a resume holds, not every row it owes.
const REPLAY_PAGE: usize = 64;

/// Pings a client may send at once, and per second after that. Each ping queues a pong, and a
/// client that pings without reading would pile them up; no keep-alive needs more.
const PING_BURST: NonZeroU32 = NonZeroU32::new(10).expect("not zero");
const PINGS_PER_SECOND: NonZeroU32 = NonZeroU32::MIN;

/// How long a subscribe waits for the feed's first horizon (the notifier just started).
const HORIZON_WAIT: Duration = Duration::from_secs(5);

/// Why a connection ends early.
#[derive(Debug)]
enum Closed {
    /// The peer went away or the socket failed.
    Peer,
    /// We close it, with this code and reason.
    Close(u16, &'static str),
}

impl From<Refused> for Closed {
    fn from(refused: Refused) -> Self {
        Closed::Close(refused.code, refused.reason)
    }
}

/// What this connection is subscribed to.
#[derive(Debug, Default)]
struct Subscriptions {
    all: bool,
    ids: HashSet<Uuid>,
    /// The version last sent per command by the latest replay, to drop the live duplicates that
    /// were queued while it ran.
    replayed: HashMap<Uuid, i64>,
}

impl Subscriptions {
    fn wants(&self, id: Uuid) -> bool {
        self.all || self.ids.contains(&id)
    }
}

struct Connection {
    state: NotifierState,
    pings: Budget,
    sink: SplitSink<WebSocket, Message>,
    subscriptions: Subscriptions,
    access: Access,
    /// The latest horizon received from the feed: a valid cursor for this client.
    horizon: Option<Arc<str>>,
    /// The cursor last sent to the client.
    sent_cursor: Option<Arc<str>>,
}

pub(crate) async fn serve(state: NotifierState, socket: WebSocket, principal: Option<Principal>) {
    // Receive the feed before anything else, so that a replay read later can only overlap with
    // live changes (duplicates are dropped), never leave a gap.
    let mut live = state.feed.subscribe();
    let connections = metrics::gauge!("cmdbus_ws_connections");
    connections.increment(1.0);
    let (sink, mut stream) = socket.split();
    let ping_interval = state.config.ping_interval;
    let horizon = state.feed.horizon();
    let mut connection = Connection {
        state,
        pings: Budget::new(PINGS_PER_SECOND, PING_BURST),
        sink,
        subscriptions: Subscriptions::default(),
        access: Access::default(),
        horizon,
        sent_cursor: None,
    };
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK_EVERY, RECHECK_EVERY);
    let auth_deadline = Instant::now() + AUTH_WITHIN;
    let mut last_heard = Instant::now();
    let shutdown = connection.state.shutdown.clone();
    // Authenticated by the upgrade's header: the client knows, nothing to say.
    let mut granted = match principal {
        Some(principal) => connection
            .access
            .grant(&connection.state.auth, principal)
            .map_err(Closed::from),
        None => Ok(()),
    };
    let closed = loop {
        if let Err(closed) = granted {
            break closed;
        }
        let authenticated = connection.access.principal().is_some();
        let renew_at = connection.access.renew_at();
        let step = tokio::select! {
            _ = shutdown.cancelled() => Err(Closed::Close(1001, "server shutting down")),
            _ = tokio::time::sleep_until(auth_deadline), if !authenticated => {
                Err(Closed::Close(CLOSE_UNAUTHORIZED, "authenticate first: {\"op\":\"auth\"}"))
            }
            _ = recheck.tick(), if authenticated => {
                connection.access.recheck(&connection.state.auth).await.map_err(Closed::from)
            }
            _ = tokio::time::sleep_until(renew_at.unwrap_or(auth_deadline)), if renew_at.is_some() => {
                connection.send_renew().await
            }
            message = stream.next() => match message {
                Some(Ok(message)) => {
                    last_heard = Instant::now();
                    connection.on_message(message).await
                }
                Some(Err(_)) | None => Err(Closed::Peer),
            },
            change = live.recv() => match change {
                Ok(change) => connection.on_change(change).await,
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
        granted = step;
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

    /// Takes the credential of an `auth` message and says so.
    async fn authenticated(&mut self, principal: Principal) -> Result<(), Closed> {
        self.access.grant(&self.state.auth, principal)?;
        let Some(principal) = self.access.principal() else {
            return Ok(());
        };
        let message = serde_json::to_string(&ServerMessage::Authenticated {
            tenant: &principal.tenant,
            scopes: principal.scopes,
            expires_at: principal.expires_at(),
        });
        match message {
            Ok(text) => self.send(Message::Text(text.into())).await,
            Err(_) => Ok(()),
        }
    }

    /// Tells a token's holder to renew it.
    async fn send_renew(&mut self) -> Result<(), Closed> {
        self.access.renew_sent();
        let Some(expires_at) = self.access.principal().and_then(Principal::expires_at) else {
            return Ok(());
        };
        self.send_json(&ServerMessage::Renew { expires_at }).await
    }

    async fn send_error(&mut self, code: &'static str, message: String) -> Result<(), Closed> {
        self.send_json(&ServerMessage::Error { code, message })
            .await
    }

    /// Tells the client to reload, then go on from its latest horizon.
    async fn send_reset(&mut self) -> Result<(), Closed> {
        let horizon = self.horizon.clone().unwrap_or_else(|| Arc::from(""));
        self.send_json(&ServerMessage::Reset { cursor: &horizon })
            .await
    }

    /// Sends a command, with the cursor when it moved since the client last got one.
    async fn send_command(&mut self, command: &CommandView) -> Result<(), Closed> {
        let cursor = self
            .horizon
            .clone()
            .filter(|horizon| self.sent_cursor.as_ref() != Some(horizon));
        self.send_json(&ServerMessage::Command {
            command,
            cursor: cursor.as_deref(),
        })
        .await?;
        if cursor.is_some() {
            self.sent_cursor = cursor;
        }
        Ok(())
    }

    async fn on_change(&mut self, change: Change) -> Result<(), Closed> {
        match change {
            Change::Event(event) => self.on_event(&event).await,
            Change::Horizon(horizon) => {
                self.horizon = Some(horizon);
                // Live duplicates of the last replay were queued before this horizon.
                self.subscriptions.replayed.clear();
                Ok(())
            }
            Change::Reset => {
                if !self.subscriptions.all && self.subscriptions.ids.is_empty() {
                    return Ok(());
                }
                self.send_reset().await
            }
        }
    }

    async fn on_event(&mut self, event: &Arc<Event>) -> Result<(), Closed> {
        let command = &event.command;
        let Some(principal) = self.access.principal() else {
            return Ok(());
        };
        if event.tenant != principal.tenant
            || !principal.reaches(command.id, command.subject.as_deref())
            || !self.subscriptions.wants(command.id)
        {
            return Ok(());
        }
        if let Some(&replayed) = self.subscriptions.replayed.get(&command.id)
            && replayed >= command.version
        {
            return Ok(()); // already sent by the replay
        }
        self.send_command(command).await
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
            Message::Ping(_) if !self.pings.take() => {
                return Err(Closed::Close(1008, "too many pings"));
            }
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        let message = serde_json::from_str::<ClientMessage>(text.as_str());
        if let Ok(ClientMessage::Auth { token }) = message {
            let principal = self
                .state
                .auth
                .bearer(&token)
                .await
                .map_err(|error| Closed::from(Refused::from(error)))?;
            return self.authenticated(principal).await;
        }
        let Some(principal) = self.access.principal() else {
            return Err(Closed::Close(
                CLOSE_UNAUTHORIZED,
                "authenticate first: {\"op\":\"auth\"}",
            ));
        };
        // Every request a socket makes counts against its credential's rate, as over HTTP.
        if let Err(error) = self.state.auth.admit(principal) {
            return self.send_error("rate_limited", error.to_string()).await;
        }
        match message {
            Ok(ClientMessage::Auth { .. }) => Ok(()),
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
        let since = match &selector.since {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => match Cursor::parse(text) {
                Ok(cursor) => Some(cursor),
                Err(error) => return self.send_error("bad_cursor", error.to_string()).await,
            },
            Some(_) => {
                return self
                    .send_error(
                        "bad_cursor",
                        "`since` takes a cursor string this server sent".to_owned(),
                    )
                    .await;
            }
        };
        if self.horizon.is_none() {
            let feed = self.state.feed.clone();
            let _ = tokio::time::timeout(HORIZON_WAIT, feed.wait_horizon()).await;
            // Read, not received: sound all the same, because a replay below reads a later
            // snapshot, and a subscription without `since` is owed nothing from before it.
            self.horizon = self.state.feed.horizon();
        }
        let Some(horizon) = self.horizon.clone() else {
            return self
                .send_error(
                    "unavailable",
                    "the status database is unavailable".to_owned(),
                )
                .await;
        };
        self.subscriptions.all |= selector.all;
        self.subscriptions.ids.extend(selector.ids.iter().copied());
        if let Some(since) = since
            && let Some(principal) = self.access.principal().cloned()
        {
            let tenant = principal.tenant.as_str();
            let reach: Vec<Uuid>;
            let scope = match (&principal.reach, selector.all) {
                (_, false) => Scope::Ids(tenant, &selector.ids),
                (Reach::Tenant, true) => Scope::Tenant(tenant),
                (Reach::Subject(subject), true) => Scope::Subject(tenant, subject),
                (Reach::Ids(ids), true) => {
                    reach = ids.iter().copied().collect();
                    Scope::Ids(tenant, &reach)
                }
            };
            self.replay(&since, scope, &principal).await?;
        }
        self.sent_cursor = Some(Arc::clone(&horizon));
        self.send_json(&ServerMessage::Subscribed { cursor: &horizon })
            .await
    }

    /// Sends the latest state of every matching command changed since `since`, a page at a
    /// time. A page read after the snapshot may hold a later state of a command: sending it
    /// early is harmless, the client keeps the higher version and the live duplicate is dropped.
    async fn replay(
        &mut self,
        since: &Cursor,
        scope: Scope<'_>,
        principal: &Principal,
    ) -> Result<(), Closed> {
        // Better no socket than a socket with a silent gap: the client resumes.
        let failed = |error: cmdbus_store::StoreError| {
            tracing::warn!(%error, "cannot replay");
            Closed::Close(1011, "cannot replay; resume with since")
        };
        let changed = cmdbus_store::changed_ids_after(&self.state.pool, since, scope, REPLAY_LIMIT)
            .await
            .map_err(failed)?;
        if changed.truncated {
            return self.send_reset().await;
        }
        for page in changed.ids.chunks(REPLAY_PAGE) {
            let rows = cmdbus_store::get_many(&self.state.pool, &principal.tenant, page)
                .await
                .map_err(failed)?;
            for row in &rows {
                if !principal.reaches(row.id, row.subject.as_deref()) {
                    continue;
                }
                let view = match row.view() {
                    Ok(view) => view,
                    Err(error) => {
                        tracing::error!(%error, "cannot build view; skipped");
                        continue;
                    }
                };
                self.subscriptions.replayed.insert(view.id, view.version);
                // Replayed changes carry no cursor: the client's own stays valid until the end.
                self.send_json(&ServerMessage::Command {
                    command: &view,
                    cursor: None,
                })
                .await?;
            }
        }
        Ok(())
    }
}
