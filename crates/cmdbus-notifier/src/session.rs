//! One push connection — a WebSocket (the loop here) or an SSE stream (`stream.rs`, the same
//! steps without client messages) — its subscriptions, its pings, its credential, and the
//! bounds that keep a slow client from growing memory. What it sends leaves through its
//! `outlet` (`outlet.rs`), as frames or as events. It follows its commands through a `Subscriber` of
//! the change feed and hands out cursors by the feed's resume rule (`cmdbus_feed::Position`):
//! each popped item may carry a horizon, which goes along with the next message that leaves.
//!
//! An idle connection costs its task, its socket and a few small allocations: the feed routes
//! changes only to the connections that follow them, and a horizon that moves wakes nobody.

use axum::extract::ws::{Message, WebSocket};
use cmdbus_auth::{Budget, Principal};
use cmdbus_feed::{Change, Delivery, Lagged, Position, Routed};
use futures_util::StreamExt;
use std::{net::IpAddr, num::NonZeroU32};
use tokio::time::Instant;
use tracing::Instrument as _;

mod outlet;
mod stream;
mod subscribe;

pub(crate) use stream::open_stream;

use crate::{
    NotifierState,
    access::Access,
    close::{CLOSE_RESTART, CLOSE_UNAUTHORIZED, Refused},
    protocol::{ClientMessage, ServerMessage},
};

/// Pings a client may send at once, and per second after that. Each ping queues a pong, and a
/// client that pings without reading would pile them up; no keep-alive needs more.
const PING_BURST: NonZeroU32 = NonZeroU32::new(10).expect("not zero");
const PINGS_PER_SECOND: NonZeroU32 = NonZeroU32::MIN;

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

/// Most changes written to a WebSocket before it is flushed: what the feed has ready for a
/// connection leaves in one write, not a write each.
const CORKED: usize = 64;

/// Close code and reason of a client that could not keep up.
const TOO_SLOW: Closed = Closed::Close(1013, "too slow; resume with since");

/// Close code and reason of a graceful stop, once the drain's changes were sent.
const RESTARTING: Closed = Closed::Close(
    CLOSE_RESTART,
    "server restarting; reconnect (to another instance) and resume with since",
);

struct Connection {
    state: NotifierState,
    pings: Budget,
    /// Where its messages go: a WebSocket, or an SSE stream.
    outlet: outlet::Outlet,
    /// What this connection follows in the change feed, and its queue of changes.
    subscriber: cmdbus_feed::Subscriber,
    /// Which cursor this connection may hand out, and what its last replay sent.
    position: Position,
    access: Access,
    /// The client's address, whose failed authentications are counted.
    address: Option<IpAddr>,
}

pub(crate) async fn serve(
    state: NotifierState,
    socket: WebSocket,
    principal: Option<Principal>,
    address: Option<IpAddr>,
) {
    let connections = metrics::gauge!("cmdbus_ws_connections");
    connections.increment(1.0);
    let (sink, mut stream) = socket.split();
    let ping_interval = state.config.ping_interval;
    let outlet = outlet::Outlet::Socket {
        sink,
        corked: false,
    };
    let mut connection = Connection::new(state, outlet, address);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    let auth_deadline = Instant::now() + connection.state.config.auth_within;
    let mut last_heard = Instant::now();
    let shutdown = connection.state.shutdown.clone();
    // Authenticated by the upgrade's header: the client knows, nothing to say.
    let mut granted = match principal {
        Some(principal) => connection
            .access
            .grant(&connection.state.auth, &connection.state.keys, principal)
            .map_err(Closed::from),
        None => Ok(()),
    };
    let closed = loop {
        if let Err(closed) = granted {
            break closed;
        }
        let authenticated = connection.access.principal().is_some();
        let renew_at = connection.access.renew_at();
        let expires = connection.access.expires();
        let step = tokio::select! {
            _ = shutdown.cancelled() => Err(connection.flush_before_restart().await),
            _ = tokio::time::sleep_until(auth_deadline), if !authenticated => {
                Err(Closed::Close(CLOSE_UNAUTHORIZED, "authenticate first: {\"op\":\"auth\"}"))
            }
            end = connection.access.key_ended() => Err(Closed::from(end)),
            _ = tokio::time::sleep_until(expires.unwrap_or(auth_deadline)), if expires.is_some() => {
                Err(Closed::Close(CLOSE_UNAUTHORIZED, "token expired"))
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
            delivery = connection.subscriber.next() => match delivery {
                Ok(delivery) => connection.on_deliveries(delivery).await,
                // The client could not keep up with its changes: bounded memory beats a gap.
                Err(Lagged) => Err(TOO_SLOW),
            },
            _ = ping.tick() => {
                if let Some(horizon) = connection.state.feed.horizon() {
                    connection.position.expire(horizon.number());
                }
                if last_heard.elapsed() > ping_interval * 2 {
                    Err(Closed::Peer)
                } else {
                    connection.ping().await
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
        let timeout = connection.state.config.send_timeout;
        connection.outlet.close(code, reason, timeout).await;
    }
}

impl Connection {
    fn new(state: NotifierState, outlet: outlet::Outlet, address: Option<IpAddr>) -> Self {
        Self {
            subscriber: state.feed.subscriber(),
            state,
            pings: Budget::new(PINGS_PER_SECOND, PING_BURST),
            outlet,
            position: Position::default(),
            access: Access::default(),
            address,
        }
    }

    /// The last words of a graceful stop: sends every change still queued for this client (the
    /// feed caught up with the workers' drain before `shutdown` fired), then says where to go.
    async fn flush_before_restart(&mut self) -> Closed {
        loop {
            match self.subscriber.try_next() {
                Ok(Some(delivery)) => {
                    if let Err(closed) = self.on_delivery(delivery).await {
                        return closed;
                    }
                }
                Ok(None) => return RESTARTING,
                Err(Lagged) => return TOO_SLOW,
            }
        }
    }

    async fn ping(&mut self) -> Result<(), Closed> {
        self.outlet.ping(self.state.config.send_timeout).await
    }

    async fn send_json(&mut self, message: &ServerMessage<'_>) -> Result<(), Closed> {
        self.outlet
            .message(message, self.state.config.send_timeout)
            .await
    }

    /// Takes the credential of an `auth` message and says so.
    async fn authenticated(&mut self, principal: Principal) -> Result<(), Closed> {
        self.access
            .grant(&self.state.auth, &self.state.keys, principal)?;
        let Some(principal) = self.access.principal() else {
            return Ok(());
        };
        let message = ServerMessage::Authenticated {
            tenant: &principal.tenant,
            scopes: principal.scopes,
            expires_at: principal.expires_at(),
        };
        let timeout = self.state.config.send_timeout;
        self.outlet.message(&message, timeout).await
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

    /// Tells the client to reload, then go on from the latest cursor it may have (or, before
    /// its first `subscribed`, the feed's: that answer follows and carries its own).
    async fn send_reset(&mut self) -> Result<(), Closed> {
        let cursor = self.position.reset_cursor(&self.state.feed);
        self.send_json(&ServerMessage::Reset { cursor: &cursor })
            .await?;
        self.position.sent(cursor);
        Ok(())
    }

    /// Sends a change as the feed serialised it, with the cursor when it moved since the client
    /// last got one (and `with_cursor`: replayed and pre-`subscribed` changes carry none).
    async fn send_change(&mut self, change: &Change, with_cursor: bool) -> Result<(), Closed> {
        let Some(view) = change.view_json() else {
            return Ok(()); // logged by the feed
        };
        let cursor = self.position.cursor_to_send(with_cursor);
        let timeout = self.state.config.send_timeout;
        self.outlet.change(view, cursor.as_deref(), timeout).await?;
        if let Some(cursor) = cursor {
            self.position.sent(cursor);
        }
        Ok(())
    }

    /// An item popped from the feed and those ready behind it (up to `CORKED`), flushed together.
    async fn on_deliveries(&mut self, first: Delivery) -> Result<(), Closed> {
        self.outlet.cork();
        let mut sent = self.on_delivery(first).await;
        for _ in 1..CORKED {
            if sent.is_err() {
                break;
            }
            sent = match self.subscriber.try_next() {
                Ok(Some(delivery)) => self.on_delivery(delivery).await,
                Ok(None) => break,
                Err(Lagged) => Err(TOO_SLOW),
            };
        }
        self.outlet.uncork();
        // A write that failed already waited out its timeout: the close that follows flushes.
        sent?;
        self.outlet.flush(self.state.config.send_timeout).await
    }

    /// An item popped from the feed, and with it, perhaps, a cursor this connection may now hand
    /// out.
    async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), Closed> {
        if let Some(horizon) = delivery.horizon {
            self.position.advance(&horizon);
        }
        self.deliver(delivery.item, true).await
    }

    async fn deliver(&mut self, item: Routed, with_cursor: bool) -> Result<(), Closed> {
        match item {
            Routed::Change(change) => self.on_change(&change, with_cursor).await,
            Routed::Reset if self.subscriber.follows_anything() => self.send_reset().await,
            Routed::Reset => Ok(()),
        }
    }

    async fn on_change(&mut self, change: &Change, with_cursor: bool) -> Result<(), Closed> {
        let command = &change.event.command;
        let Some(principal) = self.access.principal() else {
            return Ok(());
        };
        if change.event.tenant != principal.tenant
            || !principal.reaches(command.id, command.subject.as_deref())
            || !self.subscriber.wants(command.id)
        {
            return Ok(());
        }
        if self.position.replayed(command.id, command.version) {
            return Ok(()); // already sent by the replay
        }
        match push_span(change) {
            Some(span) => self.send_change(change, with_cursor).instrument(span).await,
            None => self.send_change(change, with_cursor).await,
        }
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
            let principal = Box::pin(self.state.auth.bearer_from(&token, self.address))
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
            Ok(ClientMessage::Subscribe(selector)) => Box::pin(self.subscribe(selector)).await,
            Ok(ClientMessage::Unsubscribe(selector)) => {
                if selector.all {
                    self.subscriber.unfollow_all();
                }
                self.subscriber.unfollow_ids(&selector.ids);
                // Gives back what no longer follows: fewer never fail.
                let _ = self.access.hold_ids(self.subscriber.id_count());
                Ok(())
            }
            Err(error) => self.send_error("bad_request", error.to_string()).await,
        }
    }
}

/// The span of one push of a change, a child of the span that submitted its command, when spans
/// are exported (the push then shows in the command's trace); none otherwise, so that a push
/// costs nothing more than it did.
fn push_span(change: &Change) -> Option<tracing::Span> {
    if !cmdbus_domain::trace::exporting() {
        return None;
    }
    let parent = change.event.traceparent.as_ref()?;
    let command = &change.event.command;
    let span = tracing::error_span!(
        "push",
        command.id = %command.id,
        command.type = %command.kind,
        command.attempt = command.attempt,
        command.status = command.status.as_str(),
        command.version = command.version,
        tenant = %change.event.tenant,
        trace_id = parent.trace_id_hex(),
    );
    cmdbus_domain::trace::adopt(&span, parent);
    Some(span)
}
