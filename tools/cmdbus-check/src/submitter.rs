//! The run's submitter: offers `--rate` commands a second on a fixed schedule without waiting
//! for answers (up to `--in-flight` at once), so the apis see the load the rate names and group
//! commit has something to batch. Only one ordering key's commands wait for each other: each key
//! has its own queue, submitted one after another, so a key's submission order (its `seq`) is
//! the order the apis accepted them in. It also picks the mix: keyed and unkeyed work, retryable
//! and permanent failures, failures fixed before a replay, long handlers, handlers that ignore
//! cancellation, and now and then a hostile handler (one that blocks its thread, spins the CPU,
//! panics, or holds its claim's transaction open).

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio::{
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    handler::WORK,
    procs::NodeRole,
    shared::{Pace, Shared, pick},
};

/// Keyed commands offered per second to each ordering key. One key runs one command at a time,
/// and a retry holds its key through its backoff (1 s, 5 s, 30 s): with this mix of failures a
/// key finishes about 0.75 commands a second, so each key is offered about half of that. Offered
/// more, a key's backlog grows for the whole run and drains long after it: a queue the run made
/// itself, not a fault of cmdbus (a 300/s run with 32 keys left one key draining 5 minutes on).
const PER_KEY_RATE: f64 = 0.4;

/// Ordering keys in use at `rate` commands a second: enough that each key is offered
/// `PER_KEY_RATE`, and at least 8, so that keys still share partitions and workers.
fn keys_for(rate: f64) -> u32 {
    let keyed = rate / f64::from(KEYED_ONE_IN);
    ((keyed / PER_KEY_RATE).ceil() as u32).max(8)
}

/// One command in five is keyed.
const KEYED_ONE_IN: u8 = 5;

/// Hostile handlers (block, spin, panic, hold) submitted per second, whatever the rate: each
/// takes a worker thread or a database connection for seconds, so their number, not their
/// share, is what a worker has to survive.
const HOSTILE_PER_SEC: f64 = 0.5;

/// How long one submission keeps trying (other apis, same idempotency key) before it gives up.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(60);

/// How long one try waits for its answer: longer than the run's other requests, since a loaded
/// api answers a burst late rather than not at all, and a try given up early is sent again.
const TRY_TIMEOUT: Duration = Duration::from_secs(30);

/// One command to submit.
struct Submission {
    body: Value,
    idempotency_key: String,
    /// Seeds the choice of api for this submission's tries.
    seed: u64,
}

/// Offers `rate` commands a second until `stop`, then waits for the submissions in flight and
/// records the pace in `shared.counts.pace`.
pub(crate) async fn submit(
    shared: Arc<Shared>,
    mut rng: fastrand::Rng,
    rate: f64,
    in_flight: usize,
    stop: CancellationToken,
) {
    let rate = rate.max(0.1);
    let keys_in_use = keys_for(rate);
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    let tasks = TaskTracker::new();
    let mut keys: HashMap<String, mpsc::UnboundedSender<Submission>> = HashMap::new();
    let mut seqs: HashMap<String, i64> = HashMap::new();
    let started = Instant::now();
    let mut offered: u64 = 0;
    let mut held_back = Duration::ZERO;
    loop {
        // The n-th command is due at n / rate: a late tick is caught up, not dropped.
        let due = started + Duration::from_secs_f64(offered as f64 / rate);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        offered += 1;
        let key = (rng.u8(0..KEYED_ONE_IN) == 0).then(|| format!("k{}", rng.u32(0..keys_in_use)));
        let seq = key.as_ref().map(|key| {
            let seq = seqs.entry(key.clone()).or_insert(0);
            *seq += 1;
            *seq
        });
        let submission = Submission {
            body: command(&mut rng, rate, key.as_deref(), seq),
            idempotency_key: format!("check-{}-{offered}", shared.seed),
            seed: rng.u64(..),
        };
        match key {
            Some(key) => {
                let queue = keys.entry(key).or_insert_with(|| {
                    let (sender, receiver) = mpsc::unbounded_channel();
                    tasks.spawn(one_key(shared.clone(), receiver));
                    sender
                });
                let _ = queue.send(submission);
            }
            None => {
                let waiting = Instant::now();
                let permit = tokio::select! {
                    _ = stop.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                held_back += waiting.elapsed();
                let shared = shared.clone();
                tasks.spawn(async move {
                    send(&shared, submission).await;
                    drop(permit);
                });
            }
        }
    }
    let offering = started.elapsed();
    let accepted_in_time = shared.lock_accepted().len() as u64;
    drop(keys); // each key's queue ends once it submitted what it holds
    tasks.close();
    tasks.wait().await;
    *shared.lock_pace() = Some(Pace {
        offered,
        offering,
        accepted_in_time,
        held_back,
        drained: started.elapsed(),
    });
}

/// Submits one key's commands one after another, in the order they were made.
async fn one_key(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Submission>) {
    while let Some(submission) = queue.recv().await {
        send(&shared, submission).await;
    }
}

/// A `check.work` command: mostly short work, some failures and long runs, rare hostile runs.
fn command(rng: &mut fastrand::Rng, rate: f64, key: Option<&str>, seq: Option<i64>) -> Value {
    let ms = if rng.u8(0..50) == 0 {
        rng.u64(1_500..5_000)
    } else {
        rng.u64(0..60)
    };
    let mut payload = json!({ "ms": ms });
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
    if rng.f64() < HOSTILE_PER_SEC / rate {
        let (field, value) = match rng.u8(0..4) {
            // Longer than the run's lease (2 s) at times: the runtime must renew it elsewhere.
            0 => ("block_ms", json!(rng.u64(500..3_000))),
            1 => ("spin_ms", json!(rng.u64(500..3_000))),
            2 => ("panic", json!(true)),
            _ => ("hold_ms", json!(rng.u64(500..4_000))),
        };
        payload[field] = value;
    }
    if let (Some(key), Some(seq)) = (key, seq) {
        payload["key"] = json!(key);
        payload["seq"] = json!(seq);
    }
    let mut body = json!({
        "type": WORK,
        "payload": payload,
        "priority": rng.u8(0..10),
        "max_attempts": rng.u8(2..5),
    });
    if let Some(key) = key {
        body["ordering_key"] = json!(key);
    }
    body
}

/// Submits one command and records it as accepted, or records why it was not.
async fn send(shared: &Shared, submission: Submission) {
    let mut rng = fastrand::Rng::with_seed(submission.seed);
    let started = Instant::now();
    match submit_one(
        shared,
        &mut rng,
        &submission.body,
        &submission.idempotency_key,
    )
    .await
    {
        Ok(id) => {
            shared.lock_accepted().push(id);
            shared.record_latency(started.elapsed());
        }
        Err(problem) => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            shared.violation(format!("submit {}: {problem}", submission.idempotency_key));
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
    let deadline = Instant::now() + SUBMIT_PATIENCE;
    let mut last = String::from("no api up");
    while Instant::now() < deadline {
        let Some(api) = pick(rng, &shared.cluster.members(Some(NodeRole::Api))) else {
            tokio::time::sleep(Duration::from_millis(200)).await; // waiting for a respawn
            continue;
        };
        let sent = shared
            .http
            .post(format!("http://127.0.0.1:{}/v1/commands", api.port))
            .header("idempotency-key", idempotency_key)
            .timeout(TRY_TIMEOUT)
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
            // A submission still in progress under this key elsewhere (an api that died
            // mid-request): ask again.
            Ok(response) if response.status() == StatusCode::CONFLICT => {
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
