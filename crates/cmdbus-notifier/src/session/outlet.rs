//! Where a session's messages go: a WebSocket's frames, or a Server-Sent Events stream's events.
//! The session speaks `ServerMessage`s; each outlet writes them its own way (an SSE event's name
//! is the message's `op`, its `id:` the cursor), so the rules that decide what to send stay in
//! one place, the session.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::response::sse::Event;
use futures_util::{SinkExt, stream::SplitSink};
use std::time::Duration;
use tokio::sync::mpsc;

use super::Closed;
use crate::protocol::{ServerMessage, command_frame};

/// A session's way out.
pub(super) enum Outlet {
    /// A WebSocket; while `corked`, frames are written to its buffer and flushed by `uncork`.
    Socket {
        sink: SplitSink<WebSocket, Message>,
        corked: bool,
    },
    /// An SSE stream: events go to the response body through a bounded channel.
    Stream(mpsc::Sender<Event>),
}

impl Outlet {
    /// Sends a message; one that takes longer than `timeout` means a client too slow to keep.
    pub(super) async fn message(
        &mut self,
        message: &ServerMessage<'_>,
        timeout: Duration,
    ) -> Result<(), Closed> {
        match self {
            Outlet::Socket { .. } => match serde_json::to_string(message) {
                Ok(text) => self.frame(Message::Text(text.into()), timeout).await,
                Err(error) => {
                    tracing::error!(%error, "cannot encode message");
                    Ok(())
                }
            },
            Outlet::Stream(_) => match stream_event(message) {
                Some(event) => self.event(event, timeout).await,
                None => Ok(()),
            },
        }
    }

    /// Sends a change as the feed serialised it, with the cursor when it moved.
    pub(super) async fn change(
        &mut self,
        view_json: &str,
        cursor: Option<&str>,
        timeout: Duration,
    ) -> Result<(), Closed> {
        match self {
            Outlet::Socket { .. } => {
                let frame = command_frame(view_json, cursor);
                self.frame(Message::Text(frame.into()), timeout).await
            }
            Outlet::Stream(_) => {
                let event = Event::default().event("command").data(view_json);
                let event = match cursor {
                    Some(cursor) => event.id(cursor),
                    None => event,
                };
                self.event(event, timeout).await
            }
        }
    }

    /// Keeps the connection alive: a WebSocket ping, an SSE comment.
    pub(super) async fn ping(&mut self, timeout: Duration) -> Result<(), Closed> {
        match self {
            Outlet::Socket { .. } => self.frame(Message::Ping(Default::default()), timeout).await,
            Outlet::Stream(_) => self.event(Event::default().comment("ping"), timeout).await,
        }
    }

    /// The last words: a WebSocket's close frame; an SSE stream just ends.
    pub(super) async fn close(&mut self, code: u16, reason: &'static str, timeout: Duration) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if let Outlet::Socket { .. } = self {
            let _ = self.frame(Message::Close(Some(frame)), timeout).await;
        }
    }

    /// Resolves once an SSE stream's reader went away; never for a WebSocket (its reads say so).
    pub(super) async fn gone(&self) {
        match self {
            Outlet::Stream(events) => events.closed().await,
            Outlet::Socket { .. } => std::future::pending().await,
        }
    }

    /// Holds the frames that follow in the socket's buffer until `uncork`: changes that are
    /// ready together leave in one write instead of a write each.
    pub(super) fn cork(&mut self) {
        self.set_corked(true);
    }

    /// Ends what `cork` began; `flush` writes out what it held (else the next frame sent does,
    /// a close frame on the way out).
    pub(super) fn uncork(&mut self) {
        self.set_corked(false);
    }

    /// Writes out the frames a cork held.
    pub(super) async fn flush(&mut self, timeout: Duration) -> Result<(), Closed> {
        let Outlet::Socket { sink, .. } = self else {
            return Ok(());
        };
        written(tokio::time::timeout(timeout, sink.flush()).await)
    }

    fn set_corked(&mut self, to: bool) {
        if let Outlet::Socket { corked, .. } = self {
            *corked = to;
        }
    }

    async fn frame(&mut self, message: Message, timeout: Duration) -> Result<(), Closed> {
        let Outlet::Socket { sink, corked } = self else {
            return Ok(());
        };
        // Corked, a frame is only buffered (the buffer writes itself out when full).
        let write = async {
            if *corked {
                sink.feed(message).await
            } else {
                sink.send(message).await
            }
        };
        written(tokio::time::timeout(timeout, write).await)
    }

    async fn event(&mut self, event: Event, timeout: Duration) -> Result<(), Closed> {
        let Outlet::Stream(events) = self else {
            return Ok(());
        };
        match events.send_timeout(event, timeout).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Closed::Peer),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Closed::Close(1013, "too slow")),
        }
    }
}

/// What a write that had `timeout` to finish means for the connection.
fn written(
    result: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>,
) -> Result<(), Closed> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closed::Peer),
        Err(_) => Err(Closed::Close(1013, "too slow")),
    }
}

/// A message as an SSE event (`docs/protocol.md`): the `op` is the event's name, a cursor its
/// `id:` (what `EventSource` sends back as `Last-Event-ID`). `authenticated` has no event: the
/// stream's request carried the credential.
fn stream_event(message: &ServerMessage<'_>) -> Option<Event> {
    let json = |value: serde_json::Value| value.to_string();
    Some(match message {
        ServerMessage::Authenticated { .. } => return None,
        ServerMessage::Renew { expires_at } => Event::default()
            .event("renew")
            .data(json(serde_json::json!({ "expires_at": expires_at }))),
        ServerMessage::Subscribed { cursor } => Event::default()
            .event("subscribed")
            .id(*cursor)
            .data(json(serde_json::json!({ "cursor": cursor }))),
        ServerMessage::Reset { cursor } => Event::default()
            .event("reset")
            .id(*cursor)
            .data(json(serde_json::json!({ "cursor": cursor }))),
        ServerMessage::Command { command, cursor } => {
            let event = Event::default()
                .event("command")
                .data(serde_json::to_string(command).ok()?);
            match cursor {
                Some(cursor) => event.id(*cursor),
                None => event,
            }
        }
        ServerMessage::Error { code, message } => Event::default().event("error").data(json(
            serde_json::json!({ "code": code, "message": message }),
        )),
    })
}
