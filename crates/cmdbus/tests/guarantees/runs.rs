//! The promises about runs, each broken for real and then counted: a worker paused or cut off
//! from PostgreSQL past its lease, outcomes PostgreSQL cannot store, replays racing an older
//! generation, cancels the worker never heard of, and queued rows whose message is gone.
//! (Order by key: `order.rs`; pushes: `tests/push/guarantees.rs`; operations and data:
//! `ops.rs`.)

use crate::common::{
    Env, TestApp, TestBroker,
    process::{
        PgLink, Proc, api_only, api_with_short_lease, attempts, change_behind_the_back, finished,
        long_run, purge_queue, wait_attempts_closed,
    },
};
use cmdbus::Role;
use cmdbus_domain::Lane;
use cmdbus_worker::{Context, HandlerError, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use tokio::sync::{Notify, Semaphore};

const T: Duration = Duration::from_secs(40);

#[tokio::test]
async fn a_worker_paused_past_its_lease_is_fenced_out_and_the_command_ends_once() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let first = Proc::worker(&env, "2", &[]).await;
    let id = long_run(&app, 5000, 50, T).await;
    let second = Proc::worker(&env, "2", &[]).await;
    first.signal("STOP");
    // The pause is the fault: it lasts until the other worker took over, well past the lease.
    // The message published again may first land in the paused worker's prefetch; the broker
    // gives it back once it notices the missed heartbeats (about 30 s).
    app.wait_until(id, Duration::from_secs(60), |v| {
        v["status"] == "running" && v["attempt"].as_i64() > Some(1)
    })
    .await
    .expect("taken over by the other worker");
    first.signal("CONT");
    // The paused run wakes up with less left to sleep than the new run: it ends first.
    let done = app.wait_until(id, T, finished).await.expect("finished");
    assert_eq!(done["status"], "success", "{done}");
    wait_attempts_closed(&app, id).await;
    let first_worker = format!("worker like '{}'", first.worker_like());
    let second_worker = format!("worker like '{}'", second.worker_like());
    assert_eq!(
        attempts(
            &app,
            id,
            &format!("attempt = 1 and {first_worker} and outcome = 'lease_lost'")
        )
        .await,
        1,
        "the paused run is recorded as a lost lease"
    );
    // The lost run does not use up the single attempt the command has.
    let losses = app
        .count(&format!(
            "select lease_losses::int8 from commands where id = '{id}'"
        ))
        .await;
    assert_eq!(losses, 1);
    assert_eq!(
        attempts(&app, id, "outcome = 'success'").await,
        1,
        "one success"
    );
    assert_eq!(
        attempts(
            &app,
            id,
            &format!("outcome = 'success' and {second_worker}")
        )
        .await,
        1,
        "the paused run's finish was fenced out"
    );
    let total = attempts(&app, id, "true").await;
    let last = app.wait_until(id, T, |_| true).await.expect("read");
    assert!(
        total <= 3 && last["attempt"].as_i64() <= Some(3),
        "{total} attempts: {last}"
    );
    assert_eq!(last["status"], "success", "not run again: {last}");
    drop((first, second));
    app.stop().await;
}

/// `test.block`: the first attempt waits for its cancellation (and says so), later ones succeed.
fn blocking_registry(cancelled: Arc<Notify>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.block", 1),
        move |ctx: Context, _: Value| {
            let cancelled = Arc::clone(&cancelled);
            async move {
                if ctx.attempt() > 1 {
                    return Ok(json!({"attempt": ctx.attempt()}));
                }
                tokio::select! {
                    _ = ctx.cancellation().cancelled() => cancelled.notify_one(),
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                Err(HandlerError::retryable("stopped", "cancelled"))
            }
        },
    );
    registry
}

#[tokio::test]
async fn a_worker_cut_off_from_postgresql_past_its_lease_cancels_its_handler() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let link = PgLink::open().await;
    let cancelled = Arc::new(Notify::new());
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        blocking_registry(Arc::clone(&cancelled)),
        |config| {
            config.database_url = link.url(&env);
            config.lease_secs = 2.0;
        },
    )
    .await;
    let id = app.submit_ok(json!({"type": "test.block"})).await;
    app.wait_status(id, "running", T).await;
    link.cut();
    let waited = tokio::time::timeout(Duration::from_secs(10), cancelled.notified()).await;
    link.restore();
    assert!(
        waited.is_ok(),
        "the handler kept running though its lease could not be renewed"
    );
    let done = app.wait_status(id, "success", T).await;
    assert!(done["attempt"].as_i64() <= Some(3), "{done}");
    assert_eq!(attempts(&app, id, "outcome = 'success'").await, 1);
    worker.stop_keeping_env().await;
    app.stop().await;
}

/// `test.nul`: NUL characters in the result, the error message or the progress note.
fn nul_registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.nul", 3),
        |ctx: Context, payload: Value| async move {
            match payload["in"].as_str() {
                Some("result") => Ok(json!({"text": "a\u{0}b"})),
                Some("error") => Err(HandlerError::permanent("nul_error", "bad\u{0}byte")),
                Some("retry") => Err(HandlerError::retryable("nul_retry", "try\u{0}again")),
                _ => {
                    ctx.progress(0.5, Some("half\u{0}way".to_owned())).await;
                    Ok(json!({"noted": true}))
                }
            }
        },
    );
    registry
}

#[tokio::test]
async fn outcomes_with_nul_characters_end_within_max_attempts_and_are_parked() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, nul_registry(), |_| {}).await;
    let broker = TestBroker::connect(&env).await;
    let submit = |part: &str| json!({"type": "test.nul", "payload": {"in": part}});
    let result = app.submit_ok(submit("result")).await;
    let error = app.submit_ok(submit("error")).await;
    let note = app.submit_ok(submit("note")).await;
    let retried = app.submit_ok(submit("retry")).await;

    let unstorable = app.wait_until(result, T, finished).await.expect("result");
    assert_eq!(unstorable["status"], "fail", "{unstorable}");
    assert_eq!(
        unstorable["error"]["code"], "unstorable_result",
        "{unstorable}"
    );
    assert!(unstorable["attempt"].as_i64() <= Some(3), "{unstorable}");
    let failed = app.wait_until(error, T, finished).await.expect("error");
    assert_eq!(
        (&failed["status"], &failed["attempt"]),
        (&json!("fail"), &json!(1))
    );
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains('\u{FFFD}'), "NUL replaced: {failed}");
    let noted = app.wait_until(note, T, finished).await.expect("note");
    assert_eq!(
        (&noted["status"], &noted["attempt"]),
        (&json!("success"), &json!(1))
    );
    assert_eq!(noted["progress_note"], "half\u{FFFD}way", "{noted}");
    // A retryable error with NUL is recorded at each attempt (backoff 1 s, then 5 s).
    let exhausted = app.wait_until(retried, T, finished).await.expect("retried");
    assert_eq!(
        (&exhausted["status"], &exhausted["attempt"]),
        (&json!("fail"), &json!(3)),
        "{exhausted}"
    );
    assert_eq!(exhausted["error"]["message"], "try\u{FFFD}again");
    assert_eq!(attempts(&app, retried, "outcome = 'retry'").await, 2);
    broker
        .wait_depth(&broker.queue("test.nul", Lane::Exceptions1), 3)
        .await;
    for id in [result, error, note, retried] {
        assert!(attempts(&app, id, "true").await <= 3, "{id} looped");
    }
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_replay_is_never_finished_by_the_run_of_an_older_generation() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let worker = Proc::worker(&env, "2", &[]).await;
    let id = long_run(&app, 6000, 60, T).await;
    worker.signal("STOP");
    let cancel = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    // The handler ignores cancels; the reaper ends the run whose worker stopped renewing.
    app.wait_status(id, "cancelled", T).await;
    let retry = app.post(&format!("/v1/commands/{id}/retry")).await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    app.wait_status(id, "queue", T).await;
    // The worker wakes up with the old run's handler still sleeping, and claims the replay.
    worker.signal("CONT");
    let done = app.wait_until(id, T, finished).await.expect("finished");
    assert_eq!(done["status"], "success", "{done}");
    let replay_ran_for: f64 = sqlx::query_scalar(
        "select extract(epoch from c.finished_at - a.started_at)::float8
           from commands c join command_attempts a on a.command_id = c.id
          where c.id = $1 and a.generation = 1 and a.outcome = 'success'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("the success belongs to generation 1");
    assert!(
        replay_ran_for >= 5.9,
        "the replay succeeded {replay_ran_for:.1} s after its claim: the old run finished it"
    );
    assert_eq!(attempts(&app, id, "outcome = 'success'").await, 1);
    assert_eq!(
        attempts(&app, id, "generation = 0 and outcome = 'success'").await,
        0
    );
    assert_eq!(
        attempts(&app, id, "generation = 1").await,
        1,
        "the replay ran once"
    );
    drop(worker);
    app.stop().await;
}

/// `test.gate`: runs until the test opens the gate, then fails with a retryable error.
fn gated_registry(gate: Arc<Semaphore>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.gate", 3),
        move |_: Context, _: Value| {
            let gate = Arc::clone(&gate);
            async move {
                let _open = gate.acquire().await;
                Err::<Value, _>(HandlerError::retryable("busy", "try later"))
            }
        },
    );
    registry
}

#[tokio::test]
async fn a_cancel_the_worker_never_heard_of_ends_cancelled_not_stuck_in_queue() {
    let gate = Arc::new(Semaphore::new(0));
    let app = TestApp::start_with(
        Env::new(),
        Role::All,
        gated_registry(Arc::clone(&gate)),
        |_| {},
    )
    .await;
    let id = app.submit_ok(json!({"type": "test.gate"})).await;
    app.wait_status(id, "running", T).await;
    // Requested in SQL: no control message reaches the worker's in-memory flag.
    let mut conn = app.pool.acquire().await.expect("connection");
    change_behind_the_back(&mut conn, id, "cancel_requested = true").await;
    drop(conn);
    gate.add_permits(1);
    let done = app.wait_until(id, T, finished).await;
    let done = done.expect("ends instead of waiting in queue for a claim that never comes");
    assert_eq!(done["status"], "cancelled", "{done}");
    app.stop().await;
}

#[tokio::test]
async fn a_queued_command_whose_message_was_lost_is_published_again() {
    let env = Env::new();
    let app = api_only(&env, |config| config.redeliver_after_secs = 2.0).await;
    let broker = TestBroker::connect(&env).await;
    let queue = broker.queue("demo.echo", Lane::Main);
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    app.wait_status(id, "queue", T).await;
    broker.wait_depth(&queue, 1).await;
    purge_queue(&queue);
    broker.wait_depth(&queue, 0).await;
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |_| {},
    )
    .await;
    app.wait_status(id, "success", T).await;
    assert_eq!(attempts(&app, id, "outcome = 'success'").await, 1);
    broker.close().await;
    worker.stop_keeping_env().await;
    app.stop().await;
}

#[tokio::test]
async fn a_command_whose_runs_keep_losing_their_lease_fails_lease_lost_and_is_parked() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let broker = TestBroker::connect(&env).await;
    let payload = json!({"ms": 20000, "steps": 200});
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": payload, "max_attempts": 1}))
        .await;
    // Every run's worker is killed; two lost leases are survived (the default), the third ends it.
    for attempt in 1..=3 {
        let mut worker = Proc::worker(&env, "2", &[]).await;
        app.wait_until(id, T, |v| {
            v["status"] == "running"
                && v["attempt"] == attempt
                && v["progress"].as_f64() > Some(0.0)
        })
        .await
        .expect("running again");
        worker.kill();
    }
    let failed = app.wait_until(id, T, finished).await.expect("ended");
    assert_eq!(failed["status"], "fail", "{failed}");
    assert_eq!(failed["error"]["code"], "lease_lost", "{failed}");
    assert_eq!(failed["attempt"], 3, "max_attempts + 2 at most");
    assert_eq!(attempts(&app, id, "outcome = 'lease_lost'").await, 3);
    broker
        .wait_depth(&broker.queue("demo.sleep", Lane::Exceptions1), 1)
        .await;
    broker.close().await;
    app.stop().await;
}
