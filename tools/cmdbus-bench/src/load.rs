//! The HTTP side of the load: `POST /v1/commands`, driven either closed loop (a fixed number of
//! commands in flight, each submitter waiting for its command's outcome before the next) or open
//! loop (submits on a fixed schedule, whatever the server does; latency counts from the scheduled
//! moment, so a stalled server cannot hide its stall by slowing the generator down).

use anyhow::Context as _;
use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{sync::oneshot, task::JoinSet};
use uuid::Uuid;

use crate::{
    args::{Load, Server},
    track::Tracker,
};

/// How long a closed-loop submitter waits after a refused submit before the next.
const REFUSED_PAUSE: Duration = Duration::from_millis(50);

/// Submits one kind of command.
#[derive(Debug, Clone)]
pub(crate) struct Submitter {
    http: reqwest::Client,
    url: String,
    body: Vec<u8>,
}

/// The part of the command view a `202` needs to carry.
#[derive(Debug, Deserialize)]
struct Accepted {
    id: Uuid,
}

impl Submitter {
    pub(crate) fn new(server: &Server, load: &Load) -> anyhow::Result<Self> {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", server.key))
            .context("the key is not a valid header value")?;
        let http = reqwest::Client::builder()
            .default_headers([(header::AUTHORIZATION, bearer)].into_iter().collect())
            // The server closes keep-alive connections idle for 10 s; never reuse one that old.
            .pool_idle_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()?;
        let body = serde_json::to_vec(&serde_json::json!({
            "type": load.kind,
            "payload": load.payload(),
        }))?;
        Ok(Self {
            http,
            url: format!("{}/v1/commands", server.url.trim_end_matches('/')),
            body,
        })
    }

    /// Submits once: the id and when the `202` arrived, or the status it got instead (`0`: no
    /// answer, or an answer without an id).
    async fn submit(&self) -> Result<(Uuid, Instant), u16> {
        let response = self
            .http
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .send()
            .await
            .map_err(|_| 0u16)?;
        let accepted = Instant::now();
        let status = response.status().as_u16();
        if status != 202 {
            return Err(status);
        }
        let view: Accepted = response.json().await.map_err(|_| 0u16)?;
        Ok((view.id, accepted))
    }
}

/// Drives `load` until `until`, then waits (at most `load.drain`) for the outcomes of what is
/// still in flight.
pub(crate) async fn drive(
    submitter: &Submitter,
    tracker: &Arc<Tracker>,
    load: &Load,
    until: Instant,
) {
    match (load.rate, load.closed_loop()) {
        (Some(rate), _) => open_loop(submitter, tracker, load, rate, until).await,
        (None, Some(concurrency)) => {
            closed_loop(submitter, tracker, load, concurrency, until).await
        }
        (None, None) => {}
    }
}

async fn closed_loop(
    submitter: &Submitter,
    tracker: &Arc<Tracker>,
    load: &Load,
    concurrency: usize,
    until: Instant,
) {
    let mut submitters = JoinSet::new();
    for _ in 0..concurrency {
        let (submitter, tracker, drain) = (submitter.clone(), Arc::clone(tracker), load.drain);
        submitters.spawn(async move {
            while Instant::now() < until {
                let sent = Instant::now();
                match submitter.submit().await {
                    Ok((id, accepted)) => {
                        let (done, outcome) = oneshot::channel();
                        tracker.submitted(id, sent, accepted, Some(done));
                        // A command whose outcome never comes must not stall the loop forever.
                        let patience = until.saturating_duration_since(Instant::now()) + drain;
                        if tokio::time::timeout(patience, outcome).await.is_err() {
                            return;
                        }
                    }
                    Err(status) => {
                        tracker.refused(sent, status);
                        tokio::time::sleep(REFUSED_PAUSE).await;
                    }
                }
            }
        });
    }
    while submitters.join_next().await.is_some() {}
}

async fn open_loop(
    submitter: &Submitter,
    tracker: &Arc<Tracker>,
    load: &Load,
    rate: u32,
    until: Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut requests = JoinSet::new();
    let mut next = Instant::now();
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        // Reap finished requests so the set stays as small as what is in flight.
        while requests.try_join_next().is_some() {}
        if requests.len() + tracker.in_flight() >= load.max_in_flight {
            tracker.skipped(next);
        } else {
            let (submitter, tracker, scheduled) = (submitter.clone(), Arc::clone(tracker), next);
            requests.spawn(async move {
                match submitter.submit().await {
                    Ok((id, accepted)) => tracker.submitted(id, scheduled, accepted, None),
                    Err(status) => tracker.refused(scheduled, status),
                }
            });
        }
        next += interval;
    }
    while requests.join_next().await.is_some() {}
    let deadline = Instant::now() + load.drain;
    while tracker.measured_in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
