//! Delayed commands against the real services: a `run_at` (or `delay`) records the command
//! `scheduled`; it runs no earlier than asked and within the sweep's interval after (the figures
//! are printed); it is cancelled or re-timed while it waits, and refused (`409`) after; 10,000
//! due in the same second all run; and an api killed while commands wait loses none and runs
//! none twice.

use super::*;
use chrono::{DateTime, Utc};
use common::process::Proc;

/// `POST /v1/commands/batch` at `base` (the app's own or a child's).
async fn batch_at(http: &reqwest::Client, base: &str, commands: Vec<Value>) -> Value {
    let response = http
        .post(format!("{base}/v1/commands/batch"))
        .json(&json!({ "commands": commands }))
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

/// Milliseconds from `run_at` to `column` (`queued_at`, `started_at`) over the commands of
/// `filter`: (min, median, max), by the database's clock.
async fn lateness(app: &TestApp, column: &str, filter: &str) -> (f64, f64, f64) {
    let (min, median, max): (f64, f64, f64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select min(ms), percentile_cont(0.5) within group (order by ms), max(ms)
           from (select extract(epoch from {column} - run_at)::float8 * 1000 as ms
                   from commands where {filter}) late"
    )))
    .fetch_one(&app.pool)
    .await
    .expect("lateness");
    (min, median, max)
}

#[tokio::test]
async fn a_delayed_command_runs_no_earlier_than_asked_and_promptly_after() {
    let app = TestApp::start().await;
    let run_at = Utc::now() + chrono::Duration::seconds(2);
    let mut ids = Vec::new();
    for n in 0..20 {
        // Spread over a second and a half, so that the sweep's passes fall anywhere.
        let at = run_at + chrono::Duration::milliseconds(n * 75);
        let (status, view) = app
            .submit(json!({"type": "demo.echo", "payload": n, "run_at": at.to_rfc3339()}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
        assert_eq!(view["status"], "scheduled", "waits in PostgreSQL: {view}");
        let shown: DateTime<Utc> = view["run_at"]
            .as_str()
            .and_then(|at| at.parse().ok())
            .expect("run_at in the view");
        assert_eq!(shown.timestamp_micros(), at.timestamp_micros());
        ids.push(id_of(&view));
    }
    let (status, delayed) = app
        .submit(json!({"type": "demo.echo", "payload": "d", "delay": 1.5}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(delayed["status"], "scheduled");
    ids.push(id_of(&delayed));
    assert_eq!(
        app.count("select count(*) from commands where status = 'scheduled'")
            .await,
        21,
        "nothing published yet"
    );
    for id in &ids {
        app.wait_status(*id, "success", T).await;
    }
    let filter = "run_at is not null";
    let (early, _, _) = lateness(&app, "started_at", filter).await;
    assert!(
        early >= 0.0,
        "a command started {early} ms before its run_at"
    );
    let queued = lateness(&app, "queued_at", filter).await;
    let started = lateness(&app, "started_at", filter).await;
    println!(
        "lateness over 21 delayed commands, sweep every 200 ms: released to the queue \
         {:.0}/{:.0}/{:.0} ms, started {:.0}/{:.0}/{:.0} ms after run_at (min/median/max)",
        queued.0, queued.1, queued.2, started.0, started.1, started.2
    );
    assert!(
        started.2 < 2_000.0,
        "promptly after: within the sweep interval and a claim, not {} ms",
        started.2
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_command_is_cancelled_or_re_timed_before_it_runs_and_not_after() {
    let app = TestApp::start().await;
    let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cancelled = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1, "run_at": later}))
        .await;
    let moved = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2, "run_at": later}))
        .await;

    let response = app.post(&format!("/v1/commands/{cancelled}/cancel")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let view: Value = response.json().await.expect("json");
    assert_eq!(view["status"], "cancelled");

    let reschedule = |id: uuid::Uuid, body: Value| {
        app.http
            .post(app.url(&format!("/v1/commands/{id}/reschedule")))
            .json(&body)
            .send()
    };
    let now = Utc::now().to_rfc3339();
    let refused = reschedule(cancelled, json!({"run_at": now}))
        .await
        .expect("post");
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "cancelled: too late"
    );
    let neither = reschedule(moved, json!({})).await.expect("post");
    assert_eq!(neither.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let missing = reschedule(uuid::Uuid::now_v7(), json!({"run_at": now}))
        .await
        .expect("post");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let sooner = Utc::now() + chrono::Duration::milliseconds(500);
    let response = reschedule(moved, json!({"run_at": sooner.to_rfc3339()}))
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let view: Value = response.json().await.expect("json");
    assert_eq!(view["status"], "scheduled");
    let done = app.wait_status(moved, "success", T).await;
    assert_eq!(done["result"], 2);
    let started: DateTime<Utc> = done["started_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("started_at");
    assert!(started >= sooner, "not before its new time");
    let late = reschedule(moved, json!({"run_at": later}))
        .await
        .expect("post");
    assert_eq!(late.status(), StatusCode::CONFLICT, "ran: too late");
    let body: Value = late.json().await.expect("json");
    assert_eq!(body["code"], "conflict");

    // The cancelled one never ran, however long it is past due.
    assert_eq!(
        app.count(&format!(
            "select count(*) from command_attempts where command_id = '{cancelled}'"
        ))
        .await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_submit_with_both_run_at_and_delay_or_a_bad_delay_is_refused() {
    let app = TestApp::start().await;
    let now = Utc::now().to_rfc3339();
    for body in [
        json!({"type": "demo.echo", "run_at": now, "delay": 1}),
        json!({"type": "demo.echo", "delay": -1}),
        json!({"type": "demo.echo", "delay": 1e9}),
        json!({"type": "demo.echo", "run_at": "tomorrow"}),
    ] {
        let (status, problem) = app.submit(body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
    assert_eq!(app.count("select count(*) from commands").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn ten_thousand_commands_due_in_the_same_second_all_run() {
    let app = TestApp::start_tweaked(|config| config.worker_concurrency = 64).await;
    const COUNT: usize = 10_000;
    // Far enough ahead for the batches to be recorded before it comes.
    let run_at = (Utc::now() + chrono::Duration::seconds(15)).to_rfc3339();
    let submitting = std::time::Instant::now();
    for _ in 0..COUNT / 1_000 {
        let commands = (0..1_000)
            .map(|_| json!({"type": "demo.noop", "run_at": run_at}))
            .collect();
        let answer = batch_at(&app.http, &app.base, commands).await;
        let results = answer["results"].as_array().expect("results");
        assert!(results.iter().all(|r| r["status"] == 202), "{}", results[0]);
    }
    println!(
        "recorded {COUNT} delayed commands in {:.1} s",
        submitting.elapsed().as_secs_f64()
    );
    assert_eq!(
        app.count("select count(*) from commands where status = 'scheduled'")
            .await,
        COUNT as i64,
        "all still waiting: the run_at is still to come"
    );
    app.wait_count(
        "select count(*) from commands where status = 'success'",
        "every delayed command runs",
        |done| done == COUNT as i64,
    )
    .await;
    let (released, drained): (f64, f64) = sqlx::query_as(
        "select extract(epoch from max(queued_at) - min(run_at))::float8,
                extract(epoch from max(finished_at) - min(run_at))::float8
           from commands",
    )
    .fetch_one(&app.pool)
    .await
    .expect("figures");
    let (early, _, _) = lateness(&app, "started_at", "true").await;
    assert!(early >= 0.0, "none started before its run_at");
    println!(
        "{COUNT} due in the same second: all released to the queue {released:.2} s after their \
         run_at, all run {drained:.2} s after (sweep every 200 ms, 64 handlers)"
    );
    assert_eq!(
        app.count("select count(*) from command_attempts").await,
        COUNT as i64,
        "each ran once"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_api_killed_while_commands_wait_loses_none_and_runs_each_once() {
    let env = Env::new();
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |_| {},
    )
    .await;
    let http = env.http().await;
    let mut api = Proc::spawn(&env, "api", &[]);
    common::wait_ready(&http, &api.base).await;
    const COUNT: usize = 2_000;
    let run_at = (Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    for _ in 0..COUNT / 1_000 {
        let commands = (0..1_000)
            .map(|n| json!({"type": "demo.echo", "payload": n, "run_at": run_at}))
            .collect();
        let answer = batch_at(&http, &api.base, commands).await;
        assert!(
            answer["results"]
                .as_array()
                .expect("results")
                .iter()
                .all(|r| r["status"] == 202)
        );
    }
    // Killed once its sweep has begun releasing them (or before, if it is quick to die).
    worker
        .wait_count(
            "select count(*) from commands where status <> 'scheduled'",
            "the sweep starts releasing",
            |moved| moved > 0,
        )
        .await;
    api.kill();
    let at_kill = worker
        .count("select count(*) from commands where status = 'scheduled'")
        .await;
    println!("api killed with {at_kill} of {COUNT} commands still scheduled");

    let api = Proc::spawn(&env, "api", &[]);
    common::wait_ready(&http, &api.base).await;
    worker
        .wait_count(
            "select count(*) from commands where status = 'success'",
            "every command runs after the api's restart",
            |done| done == COUNT as i64,
        )
        .await;
    assert_eq!(
        worker
            .count("select count(*) from commands where attempt <> 1")
            .await,
        0,
        "each ran once"
    );
    assert_eq!(
        worker.count("select count(*) from command_attempts").await,
        COUNT as i64,
        "one attempt each"
    );
    drop(api);
    worker.stop().await;
}
