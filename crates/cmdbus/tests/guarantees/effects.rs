//! Runs fenced by their claim: a run that lost its lease while its worker was cut off from
//! PostgreSQL cannot commit its own effect after another worker's run took over, and a delivery
//! the broker requeued (one process's connection closed) runs nothing twice, and every attempt
//! of a worker that was killed or stopped gets an outcome.

use crate::common::{
    Env, TestApp,
    process::{PgLink, Proc, api_with_short_lease, attempts, close_connection_of, finished},
};
use cmdbus::Role;
use cmdbus_worker::{Context, HandlerError, Registry};
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use tokio::sync::{Semaphore, mpsc};

const T: Duration = Duration::from_secs(40);

/// `test.effect`: the first attempt waits at `gate` (deaf to cancels, like most handlers); every
/// attempt then records its effect in the `effects` table inside a transaction that holds the
/// claim, and reports `(attempt, held)`.
fn effect_registry(
    env: &Env,
    gate: Arc<Semaphore>,
    held: mpsc::UnboundedSender<(i32, bool)>,
) -> Registry {
    // The handler's own connection, not the worker's: it still reaches PostgreSQL when the
    // worker's link is cut.
    let pool = sqlx::PgPool::connect_lazy(&env.database_url).expect("lazy pool");
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.effect", 1),
        move |ctx: Context, _: Value| {
            let (pool, gate, held) = (pool.clone(), Arc::clone(&gate), held.clone());
            async move {
                if ctx.attempt() == 1 {
                    let _open = gate.acquire().await;
                }
                let failed = |error: String| HandlerError::retryable("effect", error);
                let mut tx = pool.begin().await.map_err(|e| failed(e.to_string()))?;
                let holds = ctx
                    .hold_claim(&mut tx)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let _ = held.send((ctx.attempt(), holds));
                if !holds {
                    return Err(HandlerError::retryable("fenced", "the run lost its claim"));
                }
                sqlx::query("insert into effects (command_id, attempt) values ($1, $2)")
                    .bind(ctx.id())
                    .bind(ctx.attempt())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                tx.commit().await.map_err(|e| failed(e.to_string()))?;
                Ok(json!({"attempt": ctx.attempt()}))
            }
        },
    );
    registry
}

#[tokio::test]
async fn a_run_that_lost_its_lease_cannot_commit_its_effect_after_a_takeover() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    sqlx::query("create table effects (command_id uuid not null, attempt int not null)")
        .execute(&app.pool)
        .await
        .expect("effects table");
    let gate = Arc::new(Semaphore::new(0));
    let (held, mut reports) = mpsc::unbounded_channel();
    let link = PgLink::open().await;
    let cut_off = TestApp::start_with(
        env.clone(),
        Role::Worker,
        effect_registry(&env, Arc::clone(&gate), held.clone()),
        |config| {
            config.database_url = link.url(&env);
            config.lease_secs = 2.0;
        },
    )
    .await;
    let id = app.submit_ok(json!({"type": "test.effect"})).await;
    app.wait_status(id, "running", T).await;
    link.cut();
    // Another worker takes the command over once the reaper took it back.
    let other = TestApp::start_with(
        env.clone(),
        Role::Worker,
        effect_registry(&env, Arc::clone(&gate), held),
        |config| config.lease_secs = 2.0,
    )
    .await;
    let done = app.wait_status(id, "success", T).await;
    assert!(done["attempt"].as_i64() > Some(1), "{done}");
    // Now the first run goes on to write its effect.
    gate.add_permits(1);
    let mut first = None;
    while first.is_none() {
        let (attempt, holds) = tokio::time::timeout(T, reports.recv())
            .await
            .expect("the first run reports")
            .expect("a report");
        first = (attempt == 1).then_some(holds);
    }
    assert_eq!(first, Some(false), "the lost run still held its claim");
    let effects: Vec<i32> = sqlx::query_scalar("select attempt from effects where command_id = $1")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .expect("effects");
    assert_eq!(effects.len(), 1, "one effect: {effects:?}");
    assert_eq!(attempts(&app, id, "outcome = 'success'").await, 1);
    link.restore();
    other.stop_keeping_env().await;
    cut_off.stop_keeping_env().await;
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_requeued_while_its_run_goes_on_runs_nothing_twice() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let first = Proc::worker(&env, "2", &[]).await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 4000, "steps": 40}}))
        .await;
    app.wait_until(id, T, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("running");
    let second = Proc::worker(&env, "2", &[]).await;
    // The broker requeues the unacked delivery, and the other worker gets it while the first
    // run goes on (its lease lives in PostgreSQL, not in the broker).
    assert_eq!(close_connection_of("Worker", first.pid()), 1);
    let done = app.wait_until(id, T, finished).await.expect("finished");
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["attempt"], 1, "run once: {done}");
    assert_eq!(attempts(&app, id, "true").await, 1);
    let by_first = format!(
        "outcome = 'success' and worker like '{}'",
        first.worker_like()
    );
    assert_eq!(attempts(&app, id, &by_first).await, 1);
    drop((first, second));
    app.stop().await;
}

#[tokio::test]
async fn a_run_released_at_shutdown_is_recorded_and_does_not_use_up_attempts() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let mut stopping = Proc::worker(&env, "2", &[("CMDBUS_SHUTDOWN_GRACE_SECS", "0.5")]).await;
    let id = app
        .submit_ok(
            json!({"type": "demo.sleep", "payload": {"ms": 3000, "steps": 30}, "max_attempts": 1}),
        )
        .await;
    app.wait_until(id, T, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("running");
    // SIGTERM: the handler outlasts the grace period, so the run is given back.
    stopping.signal("TERM");
    assert!(stopping.wait_exit(), "a clean exit");
    let back = app.wait_until(id, T, |v| v["status"] != "running").await;
    assert_eq!(back.expect("given back")["status"], "queue");
    let released = format!(
        "outcome = 'released' and worker like '{}'",
        stopping.worker_like()
    );
    assert_eq!(attempts(&app, id, &released).await, 1);
    let next = Proc::worker(&env, "2", &[]).await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(attempts(&app, id, "outcome is null").await, 0);
    drop(next);
    app.stop().await;
}

#[tokio::test]
async fn every_attempt_of_a_killed_worker_gets_an_outcome() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let mut doomed = Proc::worker(&env, "2", &[]).await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 3000, "steps": 30}}))
        .await;
    app.wait_until(id, T, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("running");
    let killed = format!(
        "select count(*) from command_attempts where worker like '{}' and outcome = 'lease_lost'",
        doomed.worker_like()
    );
    doomed.kill();
    let survivor = Proc::worker(&env, "2", &[]).await;
    app.wait_status(id, "success", T).await;
    app.wait_count(
        "select count(*) from command_attempts where outcome is null",
        "attempts without an outcome",
        |open| open == 0,
    )
    .await;
    assert_eq!(
        app.count(&killed).await,
        1,
        "the killed attempt is lease_lost"
    );
    assert_eq!(
        app.count("select count(*) from command_attempts where outcome = 'success'")
            .await,
        1
    );
    drop(survivor);
    app.stop().await;
}
