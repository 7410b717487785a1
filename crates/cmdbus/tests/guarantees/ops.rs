//! The promises about operations and data, each broken for real: a failure recorded while a
//! worker shuts down, payloads PostgreSQL cannot give back, idempotency keys reused with other
//! fields, a message that arrives before its row, a killed worker's attempt, and retention.

use crate::common::{
    Env, TestApp, TestBroker, id_of,
    process::{Follower, Proc},
};
use cmdbus::{LaneArg, Role};
use cmdbus_bus::Outgoing;
use cmdbus_domain::{CommandMessage, Lane};
use cmdbus_worker::{Context, HandlerError, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// Polls `sql` (a count) until it is `want`, for at most `timeout`.
async fn wait_for_count(app: &TestApp, sql: &str, want: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let count = app.count(sql).await;
        if count == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {count}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the database's state
    }
}

/// `test.late`: works a second (deaf to cancels), then fails for good unless `fixed`.
fn late_registry(fixed: Arc<AtomicBool>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.late", 1),
        move |_: Context, _: Value| {
            let fixed = Arc::clone(&fixed);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if fixed.load(Ordering::SeqCst) {
                    Ok(json!({"fixed": true}))
                } else {
                    Err(HandlerError::permanent(
                        "late",
                        "failed while shutting down",
                    ))
                }
            }
        },
    );
    registry
}

#[tokio::test]
async fn a_failure_during_the_shutdown_grace_period_is_parked_and_rerun_from_exceptions1() {
    let env = Env::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let api = TestApp::start_with(
        env.clone(),
        Role::Api,
        late_registry(Arc::clone(&fixed)),
        |_| {},
    )
    .await;
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        late_registry(Arc::clone(&fixed)),
        |_| {},
    )
    .await;
    let broker = TestBroker::connect(&env).await;
    let id = api.submit_ok(json!({"type": "test.late"})).await;
    api.wait_status(id, "running", T).await;
    // What SIGTERM does in `main`: the shutdown token. The handler fails within the grace period.
    worker.stop_keeping_env().await;
    let failed = api.wait_status(id, "fail", T).await;
    assert_eq!(failed["error"]["code"], "late", "{failed}");
    let lane1 = broker.queue("test.late", Lane::Exceptions1);
    broker.wait_depth(&lane1, 1).await;

    fixed.store(true, Ordering::SeqCst);
    let rerun = TestApp::start_with(env.clone(), Role::Worker, late_registry(fixed), |config| {
        config.lane = LaneArg::Exceptions1;
    })
    .await;
    let done = api.wait_status(id, "success", T).await;
    assert_eq!(done["result"], json!({"fixed": true}));
    broker.wait_depth(&lane1, 0).await;
    broker.close().await;
    rerun.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn unstorable_payloads_answer_422_and_an_unreadable_row_stops_nothing() {
    let app = TestApp::start().await;
    let mut before = Follower::subscribe(&app.ws_url(), None).await;
    before.subscribed().await;
    let resume = before.resume.clone();
    before.close().await;
    for payload in ["1.7976931348623157e308", r#"{"text": "a\u0000b"}"#] {
        let response = app
            .http
            .post(app.url("/v1/commands"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"type": "demo.echo", "payload": {payload}}}"#))
            .send()
            .await
            .expect("submit");
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{payload}"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], "invalid_field", "{problem}");
    }
    assert_eq!(
        app.count("select count(*) from commands").await,
        0,
        "nothing written"
    );

    // An unreadable row (written by an older version, or by hand) and a good one, both left
    // to the relay.
    let (bad, good) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, payload) in [(bad, r#"{"n": 1e400}"#), (good, r#"{"n": 1}"#)] {
        sqlx::query(
            "insert into commands (id, tenant, type, payload, created_at)
             values ($1, 'default', 'demo.echo', $2::jsonb, now() - interval '1 minute')",
        )
        .bind(id)
        .bind(payload)
        .execute(&app.pool)
        .await
        .expect("insert");
    }
    app.wait_status(good, "success", T).await;
    let list = app
        .http
        .get(app.url("/v1/commands"))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), StatusCode::OK);
    let list: Value = list.json().await.expect("list body");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert!(items.iter().any(|c| id_of(c) == good), "{list}");
    let mut resumed = Follower::subscribe(&app.ws_url(), resume).await;
    resumed
        .until(T, |c| id_of(c) == good && c["status"] == "success")
        .await
        .expect("resume replays the good row");
    let later = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2}))
        .await;
    resumed
        .until(T, |c| id_of(c) == later && c["status"] == "success")
        .await
        .expect("and goes on live");
    resumed.close().await;
    // The unreadable row itself ends instead of looping between relay and worker.
    // (Read in SQL: its view carries a number that a JSON parser into f64 refuses.)
    wait_for_count(
        &app,
        &format!(
            "select count(*) from commands where id = '{bad}' and status = 'fail' and attempt = 1"
        ),
        1,
        T,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_with_other_fields_is_refused() {
    let app = TestApp::start().await;
    let submit = |body: Value| {
        app.http
            .post(app.url("/v1/commands"))
            .header("idempotency-key", "order-7")
            .json(&body)
            .send()
    };
    let original = json!({"type": "demo.echo", "payload": 1});
    let first = submit(original.clone()).await.expect("submit");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let id = id_of(&first.json().await.expect("view"));
    for (field, value) in [
        ("ordering_key", json!("k")),
        ("priority", json!(5)),
        ("max_attempts", json!(2)),
        ("payload", json!(2)),
    ] {
        let mut changed = original.clone();
        changed[field] = value;
        let response = submit(changed).await.expect("submit");
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(
            problem["code"], "idempotency_key_reused",
            "{field}: {problem}"
        );
    }
    let again = submit(original).await.expect("submit");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(id_of(&again.json().await.expect("view")), id);
    assert_eq!(app.count("select count(*) from commands").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_message_that_arrives_before_its_row_runs_once_the_row_exists() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let broker = TestBroker::connect(&env).await;
    let id = Uuid::now_v7();
    broker
        .broker
        .publish_command(&Outgoing {
            kind: "demo.echo".to_owned(),
            message: CommandMessage { id, generation: 0 },
            priority: 0,
            ordering_key: None,
            lane: Lane::Main,
            partition: None,
            traceparent: None,
        })
        .await
        .expect("publish");
    broker
        .wait_depth(&broker.queue("demo.echo", Lane::Main), 0)
        .await;
    // The fault: the row commits two seconds after its message was delivered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::query(
        "insert into commands (id, tenant, type, payload, status, queued_at)
         values ($1, 'default', 'demo.echo', '1', 'queue', now())",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .expect("insert");
    app.wait_status(id, "success", T).await;
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_finished_commands_and_metrics_count_only_unfinished() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let recent = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2}))
        .await;
    app.wait_status(recent, "success", T).await;
    // A command of three hours ago, finished two hours ago: its id says when it was created.
    let then = std::time::SystemTime::now() - Duration::from_secs(3 * 3_600);
    let then = then
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    let old = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        then.as_secs(),
        then.subsec_nanos(),
    ));
    let aged = [
        "insert into commands (id, tenant, type, payload, status, attempt, result,
                               created_at, queued_at, started_at, finished_at)
         values ($1, 'default', 'demo.echo', '1', 'success', 1, '1', now() - interval '3 hours',
                 now() - interval '3 hours', now() - interval '3 hours', now() - interval '2 hours')",
        "insert into command_attempts (command_id, generation, attempt, worker, started_at,
                                       finished_at, outcome)
         values ($1, 0, 1, 'a worker long gone', now() - interval '3 hours',
                 now() - interval '2 hours', 'success')",
    ];
    for statement in aged {
        sqlx::query(statement)
            .bind(old)
            .execute(&app.pool)
            .await
            .expect("an old finished command");
    }
    // An api process that keeps finished commands for an hour.
    let sweeper = Proc::spawn(&env, "api", &[("CMDBUS_RETENTION", "1h")]);
    sweeper.wait_live().await;
    wait_for_count(
        &app,
        &format!("select count(*) from commands where id = '{old}'"),
        0,
        Duration::from_secs(15),
    )
    .await;
    let recent_left = format!("select count(*) from commands where id = '{recent}'");
    assert_eq!(app.count(&recent_left).await, 1, "the recent command stays");
    let old_attempts = format!("select count(*) from command_attempts where command_id = '{old}'");
    assert_eq!(
        app.count(&old_attempts).await,
        0,
        "the old command's attempts go too"
    );
    drop(sweeper);

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.expect("text");
    for terminal in ["success", "fail", "cancelled"] {
        let line = format!("cmdbus_commands{{status=\"{terminal}\"}}");
        assert!(!text.contains(&line), "{line} is counted: {text}");
    }
    assert!(
        text.contains("cmdbus_commands{status=\"running\"}"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_submits_of_one_idempotency_key_with_different_fields_make_one_command() {
    let app = TestApp::start().await;
    let requests = (0..20).map(|n| {
        let mut body = json!({"type": "demo.echo", "payload": 1});
        if n % 2 == 1 {
            body["ordering_key"] = json!("k");
        }
        app.http
            .post(app.url("/v1/commands"))
            .header("idempotency-key", "shared")
            .json(&body)
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for response in responses {
        let response = response.expect("submit");
        let status = response.status();
        let body: Value = response.json().await.expect("body");
        match status {
            StatusCode::ACCEPTED => {
                created += 1;
                ids.insert(id_of(&body));
            }
            StatusCode::OK => {
                ids.insert(id_of(&body));
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["code"], "idempotency_key_reused", "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "one command made, one id answered"
    );
    assert_eq!(app.count("select count(*) from commands").await, 1);
    app.stop().await;
}
