//! End-to-end benchmark of a running cmdbus: submits `--count` commands of `--type` over HTTP
//! with `--concurrency` requests in flight, watches them finish over the WebSocket, and prints
//! throughput and latency (submit → 202, and submit → `success` pushed to the browser).
//!
//! `cargo run --release -p cmdbus --example bench -- --url http://127.0.0.1:8080 --count 5000`

use anyhow::Context as _;
use anyhow::bail;
use futures_util::{SinkExt, StreamExt, stream};
use reqwest::header::{self, HeaderValue};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

struct Args {
    url: String,
    count: usize,
    concurrency: usize,
    kind: String,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: "http://127.0.0.1:8080".to_owned(),
        count: 2_000,
        concurrency: 32,
        kind: "demo.noop".to_owned(),
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--count" => args.count = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--type" => args.kind = value,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<22} p50 {:>8.2} ms   p90 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.90).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let ws_url = format!("{}/v1/ws", args.url.replacen("http", "ws", 1));
    // The key: `CMDBUS_KEY` (the development key `cargo run --release` prints). The server's
    // per-key rate limit must be off (`CMDBUS_RATE_LIMIT=0`) for a load test.
    let key = std::env::var("CMDBUS_KEY").context("set CMDBUS_KEY to an API key")?;
    let bearer: HeaderValue = format!("Bearer {key}").parse()?;
    let mut request = ws_url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer.clone());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket
        .send(Message::Text(
            json!({"op": "subscribe", "all": true}).to_string().into(),
        ))
        .await?;
    // Wait for `subscribed` so no success can slip past before we listen.
    loop {
        if let Some(Message::Text(text)) = socket.next().await.transpose()?
            && serde_json::from_str::<Value>(text.as_str())?["op"] == "subscribed"
        {
            break;
        }
    }

    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let finished: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = {
        let finished = Arc::clone(&finished);
        let expected = args.count;
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if value["op"] == "command" && value["command"]["status"] == "success" {
                    let id = value["command"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let mut finished = finished.lock().expect("lock");
                    finished.entry(id).or_insert_with(Instant::now);
                    if finished.len() >= expected {
                        return;
                    }
                }
            }
        })
    };

    let http = reqwest::Client::builder()
        .default_headers([(header::AUTHORIZATION, bearer)].into_iter().collect())
        .build()?;
    let started = Instant::now();
    let kind = args.kind.clone();
    let accept_latencies: Vec<Duration> = stream::iter(0..args.count)
        .map(|n| {
            let (http, url, kind, submitted) = (
                http.clone(),
                args.url.clone(),
                kind.clone(),
                Arc::clone(&submitted),
            );
            async move {
                let at = Instant::now();
                let response = http
                    .post(format!("{url}/v1/commands"))
                    .json(&json!({"type": kind, "payload": {"n": n}}))
                    .send()
                    .await?;
                let took = at.elapsed();
                let view: Value = response.json().await?;
                let id = view["id"].as_str().context("no id")?.to_owned();
                submitted.lock().expect("lock").insert(id, at);
                anyhow::Ok(took)
            }
        })
        .buffer_unordered(args.concurrency)
        .filter_map(|result| async move { result.ok() })
        .collect()
        .await;
    let submit_time = started.elapsed();
    tokio::time::timeout(Duration::from_secs(300), watcher)
        .await
        .context("not every command finished within 300 s")??;
    let total_time = started.elapsed();

    let submitted = submitted.lock().expect("lock");
    let finished = finished.lock().expect("lock");
    let end_to_end: Vec<Duration> = submitted
        .iter()
        .filter_map(|(id, at)| finished.get(id).map(|done| done.duration_since(*at)))
        .collect();
    println!(
        "{} x {} with {} in flight: accepted {}, finished {}",
        args.count,
        args.kind,
        args.concurrency,
        accept_latencies.len(),
        end_to_end.len()
    );
    println!(
        "submit throughput      {:>8.0} commands/s ({:.2} s)",
        args.count as f64 / submit_time.as_secs_f64(),
        submit_time.as_secs_f64()
    );
    println!(
        "end-to-end throughput  {:>8.0} commands/s ({:.2} s to the last success)",
        args.count as f64 / total_time.as_secs_f64(),
        total_time.as_secs_f64()
    );
    report("submit → 202", accept_latencies);
    report("submit → success (ws)", end_to_end);
    Ok(())
}
