//! A Server-Sent Events reader for the tests of `/v1/events`: reads the response body with
//! reqwest's `bytes_stream` and parses it into events (`event:`, `id:`, `data:`, `retry:` and
//! comments), as an `EventSource` would.

use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::{pin::Pin, time::Duration};

/// One event of the stream (or a comment).
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// `event:` (empty for a comment or a `retry:` line alone).
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
    pub comment: Option<String>,
}

impl SseEvent {
    /// `data:` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// An open stream.
pub struct SseStream {
    body: Body,
    buffer: String,
    /// The last `id:` received: what `EventSource` sends back as `Last-Event-ID`.
    pub last_id: Option<String>,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(
                response
                    .bytes_stream()
                    .map(|bytes| bytes.map(|bytes| bytes.to_vec())),
            ),
            buffer: String::new(),
            last_id: None,
        }
    }

    /// The next event or comment; `None` when the stream ended (or `timeout` passed: `Err`).
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<SseEvent>, &'static str> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let event = parse(&block);
                if let Some(id) = &event.id {
                    self.last_id = Some(id.clone());
                }
                return Ok(Some(event));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err("timed out"),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// Reads until `done` holds of an event (returning every event read, it included), or fails
    /// when the stream ends or `timeout` passes first.
    pub async fn until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&SseEvent) -> bool,
    ) -> anyhow::Result<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Some(event)) => {
                    let stop = done(&event);
                    read.push(event);
                    if stop {
                        return Ok(read);
                    }
                }
                Ok(None) => anyhow::bail!("the stream ended; read {read:?}"),
                Err(error) => anyhow::bail!("{error}; read {read:?}"),
            }
        }
    }

    /// Reads until the stream ends, returning what came before; fails after `timeout`.
    pub async fn read_to_end(&mut self, timeout: Duration) -> anyhow::Result<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Some(event)) => read.push(event),
                Ok(None) => return Ok(read),
                Err(error) => anyhow::bail!("{error}; read {read:?}"),
            }
        }
    }
}

fn parse(block: &str) -> SseEvent {
    let mut event = SseEvent::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            event.comment = Some(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = value.to_owned(),
            "id" => event.id = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            "retry" => event.retry = value.parse().ok(),
            _ => {}
        }
    }
    event.data = data.join("\n");
    event
}
