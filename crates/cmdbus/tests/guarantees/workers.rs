//! The promises about worker processes: a handler that blocks its thread or spins the CPU
//! costs no run its lease (handlers run apart from the worker's heartbeats), and a worker
//! process that dies or pauses has its runs reclaimed within seconds of its last heartbeat,
//! whatever its lease, with the reclaimed run in the view and the attempt history.

use crate::common::{
    Env, TestApp,
    process::{Proc, attempts, finished, long_run, wait_attempts_closed},
};
use cmdbus::Role;
use cmdbus_worker::{Context, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// `test.hog` blocks its thread inside async code for `ms` (asleep, or spinning with `spin`):
/// the mistake a worker must survive. `test.sync` does the same work the right way, through
/// `register_blocking`, reporting progress. `test.nap` is an innocent async handler that waits
/// `ms` on the timer and stops when cancelled.
fn hog_registry() -> Registry {
    fn block(payload: &Value, mut step: impl FnMut(f32)) {
        let total = Duration::from_millis(payload["ms"].as_u64().unwrap_or(0));
        let spin = payload["spin"].as_bool().unwrap_or(false);
        let started = Instant::now();
        while started.elapsed() < total {
            if spin {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_millis(100));
                step(started.elapsed().as_secs_f32() / total.as_secs_f32());
            }
        }
    }
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.hog", 1),
        |_: Context, payload: Value| async move {
            block(&payload, |_| {});
            Ok(json!({"hogged": true}))
        },
    );
    registry.register_blocking(
        crate::common::test_type("test.sync", 1),
        |ctx: Context, payload: Value| {
            block(&payload, |done| ctx.blocking_progress(done.min(1.0), None));
            Ok(json!({"blocked": true}))
        },
    );
    registry.register(
        crate::common::test_type("test.nap", 1),
        |ctx: Context, payload: Value| async move {
            let nap = Duration::from_millis(payload["ms"].as_u64().unwrap_or(0));
            tokio::select! {
                _ = ctx.cancellation().cancelled() => {
                    Err(cmdbus_worker::HandlerError::retryable("cancelled", "stopped"))
                }
                _ = tokio::time::sleep(nap) => Ok(json!({"napped": true})),
            }
        },
    );
    registry
}

/// `cmdbus worker` with `registry`, on a runtime of its own with two threads — a worker process
/// on a two-core machine, where the fault was measured — so that what its handlers do to its
/// threads cannot reach the api (and its reaper) in the test's runtime. Cancel the token to
/// stop it; the handle says how it ended.
fn worker_on_two_threads(
    env: &Env,
    registry: Registry,
    tweak: impl FnOnce(&mut cmdbus::Config),
) -> (
    tokio::runtime::Runtime,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("worker runtime");
    let mut config = env.config();
    tweak(&mut config);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = runtime.spawn({
        let shutdown = shutdown.clone();
        async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            cmdbus::run(Role::Worker, config, registry, listener, shutdown).await
        }
    });
    (runtime, shutdown, handle)
}

#[tokio::test]
async fn handlers_that_block_or_spin_their_thread_cost_no_run_its_lease() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::Api, hog_registry(), |_| {}).await;
    let (runtime, stop_worker, worker) = worker_on_two_threads(&env, hog_registry(), |config| {
        config.lease_secs = 3.0;
        config.worker_concurrency = 16;
    });
    let mut innocents = Vec::new();
    for _ in 0..4 {
        let body = json!({"type": "test.nap", "payload": {"ms": 4000}, "max_attempts": 1});
        innocents.push(app.submit_ok(body).await);
    }
    for id in &innocents {
        app.wait_status(*id, "running", T).await;
    }
    // Each blocks for three lease periods: two asleep (they hold both threads of a two-thread
    // runtime without using a core), one spinning (it uses one, leaving the other to the
    // database and the test).
    let mut hogs = Vec::new();
    for payload in [
        json!({"ms": 9000}),
        json!({"ms": 9000}),
        json!({"ms": 9000, "spin": true}),
    ] {
        let body = json!({"type": "test.hog", "payload": payload, "max_attempts": 1});
        hogs.push(app.submit_ok(body).await);
    }
    for _ in 0..2 {
        let body = json!({"type": "test.sync", "payload": {"ms": 9000}, "max_attempts": 1});
        hogs.push(app.submit_ok(body).await);
    }
    for id in innocents.iter().chain(&hogs) {
        let done = app
            .wait_until(*id, T, |v| {
                ["success", "fail", "cancelled"].contains(&v["status"].as_str().unwrap_or(""))
            })
            .await
            .expect("finished");
        assert_eq!(done["status"], "success", "{done}");
        assert_eq!(done["attempt"], 1, "ran once, its lease never lost: {done}");
    }
    let lost = app
        .count("select count(*) from command_attempts where outcome = 'lease_lost'")
        .await;
    assert_eq!(lost, 0, "no run lost its lease");
    stop_worker.cancel();
    worker
        .await
        .expect("worker task")
        .expect("worker ended cleanly");
    runtime.shutdown_background();
    app.stop().await;
}

/// The lease the process tests give their workers: far longer than a reclaim may take.
const LONG_LEASE: &str = "30";
/// A reclaim's bound: the default `CMDBUS_WORKER_DEAD_AFTER_SECS` (5), the reaper's grace (1)
/// and a sweep, with room for a loaded machine; a sixth of the lease.
const RECLAIM_WITHIN: Duration = Duration::from_secs(12);

/// The api in this process (relay, reaper, the release of silent workers), without a worker.
async fn api(env: &Env) -> TestApp {
    TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("json")
}

/// The first attempt of `id` in the history: reclaimed from the worker `process`, which stopped
/// heartbeating, and said so.
async fn assert_reclaimed_from(app: &TestApp, id: Uuid, process: &Proc) {
    let history = get_json(app, &format!("/v1/commands/{id}/attempts")).await;
    let first = &history["items"][0];
    assert_eq!(first["attempt"], 1, "{history}");
    assert_eq!(first["outcome"], "lease_lost", "{history}");
    assert_eq!(first["error"]["code"], "worker_lost", "{history}");
    let worker = first["worker"].as_str().unwrap_or_default();
    assert!(
        worker.contains(&format!("-{}-", process.pid())),
        "the history names the worker that lost it: {history}"
    );
    assert!(
        first["error"]["message"]
            .as_str()
            .is_some_and(|why| why.contains(worker) && why.contains("stopped heartbeating")),
        "{history}"
    );
}

#[tokio::test]
async fn a_killed_workers_command_runs_again_within_seconds_not_at_the_end_of_its_lease() {
    let env = Env::new();
    let app = api(&env).await;
    let mut first = Proc::worker(&env, LONG_LEASE, &[]).await;
    let id = long_run(&app, 6_000, 100, T).await;
    let second = Proc::worker(&env, LONG_LEASE, &[]).await;
    // Both workers are listed live, with what they run.
    let workers = get_json(&app, "/v1/workers").await;
    let listed = |workers: &Value, process: &Proc| {
        workers["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["pid"] == process.pid())
            .cloned()
    };
    let mine = listed(&workers, &first).expect("the first worker is listed");
    assert_eq!(mine["running"], 1, "{workers}");
    assert!(listed(&workers, &second).is_some(), "{workers}");

    first.kill();
    let killed = Instant::now();
    let again = app
        .wait_until(id, RECLAIM_WITHIN, |v| {
            v["status"] == "running" && v["attempt"].as_i64() > Some(1)
        })
        .await
        .expect("running again on the other worker within seconds, not after the 30 s lease");
    let took = killed.elapsed();
    assert!(
        again["reclaimed_at"].is_string(),
        "the view shows the reclaim: {again}"
    );
    assert_reclaimed_from(&app, id, &first).await;
    assert!(
        listed(&get_json(&app, "/v1/workers").await, &first).is_none(),
        "a dead worker is not listed"
    );
    let done = app.wait_until(id, T, finished).await.expect("finished");
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        attempts(
            &app,
            id,
            &format!(
                "outcome = 'success' and worker like '{}'",
                second.worker_like()
            )
        )
        .await,
        1
    );
    println!("killed worker's command running again after {took:?} (lease 30 s)");
    drop(second);
    app.stop().await;
}

#[tokio::test]
async fn a_paused_workers_command_is_reclaimed_within_seconds_and_its_late_finish_is_fenced() {
    let env = Env::new();
    let app = api(&env).await;
    let first = Proc::worker(&env, LONG_LEASE, &[]).await;
    let id = long_run(&app, 6_000, 100, T).await;
    let second = Proc::worker(&env, LONG_LEASE, &[]).await;
    first.signal("STOP");
    let paused = Instant::now();
    // Reclaimed: the paused run is over in the history. (Where the message published again
    // lands is the broker's choice: it may sit in the paused worker's prefetch until it wakes.)
    app.wait_count(
        &format!(
            "select count(*) from command_attempts where command_id = '{id}' \
              and attempt = 1 and outcome = 'lease_lost'"
        ),
        "the paused run is reclaimed",
        |n| n == 1,
    )
    .await;
    let took = paused.elapsed();
    assert!(
        took < RECLAIM_WITHIN,
        "reclaimed after {took:?} (lease 30 s)"
    );
    let view = get_json(&app, &format!("/v1/commands/{id}")).await;
    assert!(view["reclaimed_at"].is_string(), "{view}");
    assert_reclaimed_from(&app, id, &first).await;
    // The paused run wakes with most of its sleep behind it and tries to finish first: fenced.
    first.signal("CONT");
    let done = app.wait_until(id, T, finished).await.expect("finished");
    assert_eq!(done["status"], "success", "{done}");
    wait_attempts_closed(&app, id).await;
    assert_eq!(
        attempts(&app, id, "outcome = 'success'").await,
        1,
        "one success"
    );
    assert_eq!(
        attempts(&app, id, "attempt = 1 and outcome = 'lease_lost'").await,
        1,
        "the paused run never finished"
    );
    println!("paused worker's run reclaimed after {took:?} (lease 30 s)");
    drop((first, second));
    app.stop().await;
}

#[tokio::test]
async fn a_worker_that_cannot_write_its_heartbeat_row_stops_its_handlers_before_they_are_released()
{
    let env = Env::new();
    let app = api(&env).await;
    let link = crate::common::process::PgLink::open().await;
    let cancelled = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut registry = Registry::new();
    registry.register(crate::common::test_type("test.wait", 1), {
        let cancelled = std::sync::Arc::clone(&cancelled);
        move |ctx: Context, _: Value| {
            let cancelled = std::sync::Arc::clone(&cancelled);
            async move {
                if ctx.attempt() > 1 {
                    return Ok(json!({"attempt": ctx.attempt()}));
                }
                ctx.cancellation().cancelled().await;
                cancelled.notify_one();
                Err(cmdbus_worker::HandlerError::retryable(
                    "stopped",
                    "cancelled",
                ))
            }
        }
    });
    let worker = TestApp::start_with(env.clone(), Role::Worker, registry, |config| {
        config.database_url = link.url(&env);
        config.lease_secs = 30.0;
        config.worker_dead_after_secs = 2.0;
    })
    .await;
    let id = app.submit_ok(json!({"type": "test.wait"})).await;
    app.wait_status(id, "running", T).await;
    link.cut();
    let cut = Instant::now();
    // The lease has 30 s left; the heartbeat row goes stale after 2: the handler must stop by
    // then, before the api may release the run to another worker.
    let waited = tokio::time::timeout(Duration::from_secs(6), cancelled.notified()).await;
    let took = cut.elapsed();
    link.restore();
    assert!(
        waited.is_ok(),
        "the handler ran on past its worker's heartbeat row"
    );
    println!("handler cancelled {took:?} after the worker lost PostgreSQL (dead_after 2 s)");
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(attempts(&app, id, "outcome = 'success'").await, 1);
    worker.stop_keeping_env().await;
    app.stop().await;
}
