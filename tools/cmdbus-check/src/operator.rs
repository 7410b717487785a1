//! What users and operators do during a run: a paced submitter (one request at a time, so
//! submission order is defined, per key too) and random cancels and replays.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    handler::WORK,
    procs::NodeRole,
    shared::{Shared, pick},
};

/// Ordering keys in use; few enough that each sees many commands.
const KEYS: u32 = 6;

/// How long one submission keeps trying (other apis, same idempotency key) before it gives up.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(60);

/// Submits `rate` commands a second until `stop`.
pub(crate) async fn submit(
    shared: &Shared,
    mut rng: fastrand::Rng,
    rate: f64,
    stop: CancellationToken,
) {
    let pace = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut ticker = tokio::time::interval(pace);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seqs: HashMap<String, i64> = HashMap::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        n += 1;
        // A quarter of the stream is keyed: a key runs one command at a time, so a larger share
        // outgrows what its partitions can run on a busy two-core machine.
        let key = (rng.u8(0..4) == 0).then(|| format!("k{}", rng.u32(0..KEYS)));
        let mut payload = json!({ "ms": if rng.u8(0..10) == 0 { rng.u64(1_500..5_000) } else { rng.u64(0..300) } });
        if rng.u8(0..10) < 3 {
            payload["ignore_cancel"] = json!(true);
        }
        match rng.u8(0..20) {
            0 => payload["permanent"] = json!(true),
            1..=3 => payload["fail_times"] = json!(rng.u8(1..3)),
            // Parked, then replayed after the "fix": the replay succeeds.
            4 => payload["fail_before_generation"] = json!(1),
            _ => {}
        }
        let seq = key.as_ref().map(|key| {
            let seq = seqs.entry(key.clone()).or_insert(0);
            *seq += 1;
            *seq
        });
        if let (Some(key), Some(seq)) = (&key, seq) {
            payload["key"] = json!(key);
            payload["seq"] = json!(seq);
        }
        let mut body = json!({
            "type": WORK,
            "payload": payload,
            "priority": rng.u8(0..10),
            "max_attempts": rng.u8(2..5),
        });
        if let Some(key) = &key {
            body["ordering_key"] = json!(key);
        }
        let idempotency_key = format!("check-{}-{n}", shared.seed);
        match submit_one(shared, &mut rng, &body, &idempotency_key).await {
            Ok(id) => shared.lock_accepted().push(id),
            Err(problem) => shared.violation(format!("submit {idempotency_key}: {problem}")),
        }
    }
}

/// Posts one command, trying apis in turn with the same idempotency key until one answers.
async fn submit_one(
    shared: &Shared,
    rng: &mut fastrand::Rng,
    body: &Value,
    idempotency_key: &str,
) -> Result<Uuid, String> {
    let deadline = tokio::time::Instant::now() + SUBMIT_PATIENCE;
    let mut last = String::from("no api up");
    while tokio::time::Instant::now() < deadline {
        let Some(api) = pick(rng, &shared.cluster.members(Some(NodeRole::Api))) else {
            tokio::time::sleep(Duration::from_millis(200)).await; // waiting for a respawn
            continue;
        };
        let sent = shared
            .http
            .post(format!("http://127.0.0.1:{}/v1/commands", api.port))
            .header("idempotency-key", idempotency_key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) if matches!(response.status(), StatusCode::OK | StatusCode::ACCEPTED) => {
                let view: Value = response.json().await.map_err(|error| error.to_string())?;
                return view["id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .ok_or_else(|| format!("answer without an id: {view}"));
            }
            Ok(response) if response.status().is_server_error() => {
                last = format!("{}", response.status());
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(format!("{status}: {text}"));
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // backing off before the next api
    }
    Err(format!(
        "no api accepted it within {SUBMIT_PATIENCE:?}: {last}"
    ))
}

/// Cancels recent commands and replays failed ones at random moments until `stop`.
pub(crate) async fn operate(shared: &Shared, mut rng: fastrand::Rng, stop: CancellationToken) {
    loop {
        let pause = Duration::from_millis(rng.u64(300..1_500));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let Some(api) = pick(&mut rng, &shared.cluster.members(Some(NodeRole::Api))) else {
            continue;
        };
        let cancel = rng.bool();
        let target = if cancel {
            let accepted = shared.lock_accepted();
            let recent = &accepted[accepted.len().saturating_sub(30)..];
            (!recent.is_empty()).then(|| recent[rng.usize(0..recent.len())])
        } else {
            let failed: Vec<Uuid> =
                sqlx::query_scalar("select id from commands where status = 'fail' order by id")
                    .fetch_all(&shared.pool)
                    .await
                    .unwrap_or_default();
            (!failed.is_empty()).then(|| failed[rng.usize(0..failed.len())])
        };
        let Some(id) = target else { continue };
        let action = if cancel { "cancel" } else { "retry" };
        let answer = shared
            .http
            .post(format!(
                "http://127.0.0.1:{}/v1/commands/{id}/{action}",
                api.port
            ))
            .send()
            .await;
        if answer.is_ok_and(|response| response.status() == StatusCode::ACCEPTED) {
            let counter = if cancel {
                &shared.counts.cancels
            } else {
                &shared.counts.replays
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}
