//! The WebSocket client of the tests: connects to `/v1/ws` like a browser, keeps the last cursor
//! the server sent, and waits on the events it names.

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use super::test_key;

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of `/v1/ws`. Like a browser, it keeps the last cursor the server sent.
pub struct WsClient {
    socket: Socket,
    pub cursor: Option<String>,
}

impl WsClient {
    /// Connects with the test key in the upgrade's `Authorization` header.
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, Some(&test_key().key)).await
    }

    /// Connects with `credential` as the upgrade's bearer, or with none (a browser, which then
    /// sends `{"op":"auth"}`).
    pub async fn connect_with(url: &str, credential: Option<&str>) -> Self {
        let bearer = credential.map(|credential| format!("Bearer {credential}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|bearer| ("authorization", bearer.as_str()))
            .collect();
        Self::connect_with_headers(url, &headers)
            .await
            .expect("websocket connect")
    }

    /// Connects with these request headers (such as `Origin`; no credential unless given); a
    /// refused upgrade comes back as `tungstenite::Error::Http` with the server's response.
    pub async fn connect_with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::{
            client::IntoClientRequest,
            http::{HeaderName, HeaderValue},
        };
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            let value = HeaderValue::from_str(value).expect("header value");
            request.headers_mut().insert(name, value);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self {
            socket,
            cursor: None,
        })
    }

    /// The TCP connection under the WebSocket, for probes that write raw frames.
    pub fn tcp(&mut self) -> &mut tokio::net::TcpStream {
        match self.socket.get_mut() {
            MaybeTlsStream::Plain(stream) => stream,
            _ => panic!("tests speak plain ws://"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("websocket send");
    }

    /// Subscribes to all (resuming from `since`, a cursor the server sent) and returns the
    /// commands replayed before the `subscribed` answer.
    pub async fn subscribe_all(&mut self, since: Option<&str>) -> Vec<Value> {
        let mut request = json!({"op": "subscribe", "all": true});
        if let Some(since) = since {
            request["since"] = json!(since);
        }
        self.send(request).await;
        let mut replayed = Vec::new();
        loop {
            let reply = self
                .next_json(Duration::from_secs(10))
                .await
                .expect("reply");
            match reply["op"].as_str() {
                Some("subscribed") => return replayed,
                Some("command") => replayed.push(reply["command"].clone()),
                _ => panic!("unexpected reply {reply}"),
            }
        }
    }

    /// The next JSON text message, skipping pings; keeps the cursor it carries.
    pub async fn next_json(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        let text = self.next_text(timeout).await?;
        let value: Value = serde_json::from_str(&text)?;
        if let Some(cursor) = value["cursor"].as_str() {
            self.cursor = Some(cursor.to_owned());
        }
        Ok(value)
    }

    /// The next text message as sent (for documents nested deeper than a parser's default
    /// limit), skipping pings.
    pub async fn next_text(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("websocket timed out")?
                .context("websocket closed")??;
            match message {
                Message::Text(text) => return Ok(text.as_str().to_owned()),
                Message::Close(frame) => bail!("closed by server: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Subscribes to all and says whether the socket was let in: `Ok` once subscribed, or the
    /// close code and reason of a refusal.
    pub async fn admitted(&mut self, timeout: Duration) -> Result<(), (u16, String)> {
        self.send(json!({"op": "subscribe", "all": true})).await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("neither subscribed nor closed in time")
                .expect("websocket ended without a close frame")
                .expect("websocket");
            match message {
                Message::Text(text) if text.as_str().contains("\"subscribed\"") => return Ok(()),
                Message::Close(Some(frame)) => {
                    return Err((frame.code.into(), frame.reason.as_str().to_owned()));
                }
                Message::Close(None) => panic!("closed without a code"),
                _ => {}
            }
        }
    }

    /// Reads until the server closes the socket; the close code, its reason and the JSON
    /// messages that came before it.
    pub async fn closed(&mut self, timeout: Duration) -> anyhow::Result<(u16, String, Vec<Value>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("websocket still open")?
                .context("websocket ended without a close frame")??;
            match message {
                Message::Text(text) => before.push(serde_json::from_str(text.as_str())?),
                Message::Close(Some(frame)) => {
                    return Ok((frame.code.into(), frame.reason.as_str().to_owned(), before));
                }
                Message::Close(None) => bail!("closed without a code"),
                _ => {}
            }
        }
    }

    /// Collects `command` messages until `done` holds for one of them.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next_json(remaining).await?;
            if message["op"] != "command" {
                bail!("unexpected message {message}");
            }
            let command = message["command"].clone();
            let finished = done(&command);
            seen.push(command);
            if finished {
                return Ok(seen);
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
