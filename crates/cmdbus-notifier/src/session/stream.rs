//! One Server-Sent Events stream (`GET /v1/events`): the WebSocket session without the client's
//! messages. Its credential is taken when the request is answered (a refusal is an HTTP problem),
//! its one subscription comes from the query, and then the session's own steps run: deliveries
//! by the resume rule, renewals, pings (comments), expiry and revocation (the stream ends), and
//! a graceful stop that sends the drain's changes before the stream ends.

use axum::response::sse::Event;
use cmdbus_auth::{AuthError, Principal};
use cmdbus_feed::Lagged;
use std::{net::IpAddr, time::Duration};
use tokio::{sync::mpsc, time::Instant};

use super::{Closed, Connection, TOO_SLOW, outlet::Outlet};
use crate::{NotifierState, protocol::Selector};

/// How often an idle stream gets a `: ping` comment (proxies drop silent connections).
const PING_EVERY: Duration = Duration::from_secs(15);

/// Events queued for the response body before a send waits (and, past the send timeout, the
/// client is dropped as too slow).
const QUEUED_EVENTS: usize = 64;

/// How long `EventSource` waits before it reconnects, said once at the start of the stream.
const RETRY: Duration = Duration::from_millis(1000);

/// Takes a stream slot for `principal` (a socket slot: the caps count both) and starts its
/// session: the events, in order, for the response body.
pub(crate) fn open_stream(
    state: NotifierState,
    principal: Principal,
    selector: Selector,
    address: Option<IpAddr>,
) -> Result<mpsc::Receiver<Event>, AuthError> {
    let (events, body) = mpsc::channel(QUEUED_EVENTS);
    let _ = events.try_send(Event::default().retry(RETRY));
    let mut connection = Connection::new(state.clone(), Outlet::Stream(events), address);
    connection
        .access
        .take(&state.auth, &state.keys, principal)?;
    tokio::spawn(async move {
        let streams = metrics::gauge!("cmdbus_sse_streams");
        streams.increment(1.0);
        let _ = Box::pin(connection.stream(selector)).await;
        streams.decrement(1.0);
    });
    Ok(body)
}

impl Connection {
    /// Subscribes once, then serves the stream until it ends, for whatever reason.
    async fn stream(&mut self, selector: Selector) -> Closed {
        if let Err(closed) = Box::pin(self.subscribe(selector)).await {
            return closed;
        }
        if !self.subscriber.follows_anything() {
            return Closed::Peer; // the subscribe was refused: its `error` event said why
        }
        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            let renew_at = self.access.renew_at();
            let expires = self.access.expires();
            let never = Instant::now() + Duration::from_secs(86_400);
            let step = tokio::select! {
                _ = shutdown.cancelled() => Err(self.flush_before_restart().await),
                () = self.outlet.gone() => Err(Closed::Peer),
                end = self.access.key_ended() => Err(Closed::from(end)),
                _ = tokio::time::sleep_until(expires.unwrap_or(never)), if expires.is_some() => {
                    Err(Closed::Peer) // the stream ends; the client comes back with a new token
                }
                _ = tokio::time::sleep_until(renew_at.unwrap_or(never)), if renew_at.is_some() => {
                    self.send_renew().await
                }
                delivery = self.subscriber.next() => match delivery {
                    Ok(delivery) => self.on_delivery(delivery).await,
                    Err(Lagged) => Err(TOO_SLOW),
                },
                _ = ping.tick() => {
                    if let Some(horizon) = self.state.feed.horizon() {
                        self.position.expire(horizon.number());
                    }
                    self.ping().await
                }
            };
            if let Err(closed) = step {
                return closed;
            }
        }
    }
}
