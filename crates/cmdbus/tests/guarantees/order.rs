//! Order by key as a property of the database: a first command whose publish failed, and one
//! whose run was reaped after its worker paused, are never overtaken by later commands of their
//! key; and ordered commands waiting out a backoff do not hold handler slots others need.

use crate::common::{
    Env, TestApp,
    process::{Proc, api_only, api_with_short_lease, attempts, finished, unreachable_amqp_url},
};
use cmdbus::Role;
use cmdbus_worker::{Context, HandlerError, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const T: Duration = Duration::from_secs(40);

/// `test.record`: records the order in which commands run, in the `runs` table.
async fn recording_app(env: &Env, tweak: impl FnOnce(&mut cmdbus::Config)) -> TestApp {
    let pool = sqlx::PgPool::connect_lazy(&env.database_url).expect("lazy pool");
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.record", 1),
        move |ctx: Context, _: Value| {
            let pool = pool.clone();
            async move {
                sqlx::query("insert into runs (command_id) values ($1)")
                    .bind(ctx.id())
                    .execute(&pool)
                    .await
                    .map_err(|error| HandlerError::retryable("runs", error.to_string()))?;
                Ok(Value::Null)
            }
        },
    );
    let app = TestApp::start_with(env.clone(), Role::All, registry, tweak).await;
    sqlx::query("create table runs (seq bigserial primary key, command_id uuid not null)")
        .execute(&app.pool)
        .await
        .expect("runs table");
    app
}

#[tokio::test]
async fn an_ordered_command_whose_publish_failed_runs_before_later_ones_of_its_key() {
    let env = Env::new();
    let app = recording_app(&env, |_| {}).await;
    // An api process that cannot reach the broker records A but cannot publish it.
    let cut_off = Proc::spawn(&env, "api", &[("CMDBUS_AMQP_URL", &unreachable_amqp_url())]);
    cut_off.wait_live().await;
    let response = env
        .http()
        .await
        .post(format!("{}/v1/commands", cut_off.base))
        .json(&json!({"type": "test.record", "ordering_key": "k"}))
        .send()
        .await
        .expect("submit A");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let a: Value = response.json().await.expect("view");
    assert_eq!(a["status"], "new", "{a}");
    let a = crate::common::id_of(&a);
    drop(cut_off);
    let b = app
        .submit_ok(json!({"type": "test.record", "ordering_key": "k"}))
        .await;
    for id in [a, b] {
        app.wait_status(id, "success", T).await;
    }
    let order: Vec<Uuid> = sqlx::query_scalar("select command_id from runs order by seq")
        .fetch_all(&app.pool)
        .await
        .expect("runs");
    assert_eq!(order, vec![a, b], "A was submitted first, B ran first");
    app.stop().await;
}

/// True when every attempt of `later` started after `earlier` succeeded.
async fn ran_after(app: &TestApp, earlier: Uuid, later: Uuid) -> bool {
    sqlx::query_scalar(
        "select (select min(started_at) from command_attempts where command_id = $2)
             >= (select finished_at from command_attempts where command_id = $1 and outcome = 'success')",
    )
    .bind(earlier)
    .bind(later)
    .fetch_one(&app.pool)
    .await
    .expect("attempt times")
}

#[tokio::test]
async fn a_reaped_ordered_command_is_never_overtaken_by_later_ones_of_its_key() {
    let env = Env::new();
    let app = api_with_short_lease(&env).await;
    let worker = Proc::worker(&env, "2", &[]).await;
    let slow = json!({"ms": 3000, "steps": 30, "ignore_cancel": true});
    let a = app
        .submit_ok(json!({"type": "demo.sleep", "payload": slow, "ordering_key": "k"}))
        .await;
    app.wait_until(a, T, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("A running");
    let quick = json!({"ms": 10, "steps": 1});
    let b = app
        .submit_ok(json!({"type": "demo.sleep", "payload": quick, "ordering_key": "k"}))
        .await;
    app.wait_status(b, "queue", T).await;
    worker.signal("STOP");
    // Paused until the reaper took A back.
    app.wait_until(a, T, |v| v["status"] != "running")
        .await
        .expect("A reaped");
    worker.signal("CONT");
    for id in [a, b] {
        let done = app.wait_until(id, T, finished).await.expect("finished");
        assert_eq!(done["status"], "success", "{done}");
    }
    assert!(ran_after(&app, a, b).await, "B started before A succeeded");
    assert!(attempts(&app, a, "true").await <= 3);
    drop(worker);
    app.stop().await;
}

#[tokio::test]
async fn ordered_commands_in_backoff_do_not_hold_the_handler_slots_of_others() {
    let app = TestApp::start_tweaked(|config| {
        config.worker_concurrency = 2;
    })
    .await;
    let partitions = cmdbus::Config::defaults().partitions;
    let first = "key-1".to_owned();
    let second = (2..100)
        .map(|n| format!("key-{n}"))
        .find(|key| {
            cmdbus_domain::partition_of(key, partitions)
                != cmdbus_domain::partition_of(&first, partitions)
        })
        .expect("a key in another partition");
    let mut waiting = Vec::new();
    for key in [&first, &second] {
        let id = app
            .submit_ok(json!({"type": "demo.fail", "payload": {"times": 2}, "max_attempts": 3, "ordering_key": key}))
            .await;
        waiting.push(id);
    }
    for id in &waiting {
        // Failed twice: the next attempt comes after a 5 s backoff.
        app.wait_until(*id, T, |v| v["attempt"] == 2 && v["status"] == "queue")
            .await
            .expect("in backoff");
    }
    let echo = app.submit_ok(json!({"type": "demo.echo"})).await;
    let quick =
        tokio::time::timeout(Duration::from_secs(2), app.wait_status(echo, "success", T)).await;
    assert!(quick.is_ok(), "the echo waited for the ordered backoffs");
    for id in &waiting {
        let meanwhile = app.wait_until(*id, T, |_| true).await.expect("read");
        assert_eq!(meanwhile["status"], "queue", "{id} still in backoff");
    }
    for id in &waiting {
        app.wait_status(*id, "success", T).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_parked_predecessor_does_not_block_its_key_and_a_retrying_one_does() {
    let app = TestApp::start().await;
    let parked = app
        .submit_ok(
            json!({"type": "demo.fail", "payload": {"permanent": true}, "ordering_key": "p"}),
        )
        .await;
    let after_parked = app
        .submit_ok(json!({"type": "demo.echo", "ordering_key": "p"}))
        .await;
    app.wait_status(parked, "fail", T).await;
    app.wait_status(after_parked, "success", T).await;

    let retrying = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 1}, "max_attempts": 2, "ordering_key": "r"}))
        .await;
    let after_retrying = app
        .submit_ok(json!({"type": "demo.echo", "ordering_key": "r"}))
        .await;
    for id in [retrying, after_retrying] {
        app.wait_status(id, "success", T).await;
    }
    assert!(
        ran_after(&app, retrying, after_retrying).await,
        "the later command ran while its predecessor waited for a retry"
    );
    app.stop().await;
}

/// A keyed backlog whose commands fail now and then drains by hand-on, in linear time: a command
/// that is not its key's turn is held in PostgreSQL (never bounced through the broker's delay
/// tier), and the finish of its predecessor publishes it. The api's sweeps are slowed to a
/// minute, so every command here was handed on by a worker's finish — a lost hand-on would
/// leave its key stuck and the test waiting. One key never has two commands running, and each
/// key's commands succeed in the order they were submitted.
#[tokio::test]
async fn a_keyed_backlog_with_failures_drains_by_hand_on_without_bouncing() {
    const KEYS: usize = 4;
    const PER_KEY: usize = 100;
    let env = Env::new();
    let app = api_only(&env, |config| config.sweep_interval_ms = 60_000).await;
    // Its own process, so that its delivery counters are this test's alone.
    let worker = Proc::worker(&env, "30", &[]).await;
    let submitters: Vec<_> = (0..KEYS)
        .map(|key| {
            let app_url = app.url("/v1/commands");
            let http = app.http.clone();
            tokio::spawn(async move {
                for n in 0..PER_KEY {
                    // One in twenty fails once (a 1 s backoff), the rest succeed at once.
                    let body = if n % 20 == 7 {
                        json!({"type": "demo.fail", "payload": {"times": 1}, "max_attempts": 2,
                               "ordering_key": format!("key-{key}")})
                    } else {
                        json!({"type": "demo.noop", "ordering_key": format!("key-{key}")})
                    };
                    let response = http
                        .post(&app_url)
                        .json(&body)
                        .send()
                        .await
                        .expect("submit");
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.await.expect("submitter");
    }
    let total = (KEYS * PER_KEY) as i64;
    app.wait_count(
        "select count(*) from commands where status = 'success'",
        "every command succeeded",
        |n| n == total,
    )
    .await;
    // Each key's commands succeeded in the order they were submitted.
    let out_of_order = app
        .count(
            "select count(*) from (
                 select c.ordering_key, c.created_at, c.id,
                        row_number() over (partition by c.ordering_key
                                           order by c.created_at, c.id) as submitted,
                        row_number() over (partition by c.ordering_key
                                           order by a.started_at) as ran
                   from commands c
                   join command_attempts a on a.command_id = c.id and a.outcome = 'success') x
              where submitted <> ran",
        )
        .await;
    assert_eq!(out_of_order, 0, "a key's commands succeeded out of order");
    // No attempt of a key started before the key's previous attempt ended.
    let overlapping = app
        .count(
            "select count(*) from (
                 select a.started_at,
                        lag(a.finished_at) over (partition by c.ordering_key
                                                 order by a.started_at) as previous_end
                   from command_attempts a join commands c on c.id = a.command_id) x
              where started_at < previous_end",
        )
        .await;
    assert_eq!(overlapping, 0, "two commands of one key ran at once");
    let metrics = reqwest::get(format!("{}/metrics", worker.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let skipped = |reason: &str| -> f64 {
        metrics
            .lines()
            .find(|line| {
                line.starts_with("cmdbus_deliveries_skipped_total")
                    && line.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    eprintln!(
        "{total} keyed commands: {} deliveries held for their key, {} bounced",
        skipped("held"),
        skipped("ordered")
    );
    assert_eq!(
        skipped("ordered"),
        0.0,
        "deliveries bounced through the broker"
    );
    assert!(
        skipped("held") < total as f64,
        "more deliveries held than commands: {}",
        skipped("held")
    );
    drop(worker);
    app.stop().await;
}
