//! Failure handling against the real app and broker: retries with backoff that never block a
//! consumer, parking in exception lanes and re-running parked work, poison messages, bulk replay
//! fenced by generation, cancelling a running command through the control fanout, priorities.

use super::*;

#[tokio::test]
async fn a_retryable_failure_waits_in_a_delay_tier_without_blocking_the_consumer() {
    // One handler slot: if the backoff blocked it, the echo below could not overtake.
    let app = TestApp::start_tweaked(|config| {
        config.worker_concurrency = 1;
    })
    .await;
    let failing = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 2}, "max_attempts": 3}))
        .await;
    let waiting = app.wait_status(failing, "queue", T).await;
    let waiting = if waiting["attempt"] == 0 {
        app.wait_until(failing, T, |v| v["status"] == "queue" && v["attempt"] == 1)
            .await
            .expect("first attempt failed")
    } else {
        waiting
    };
    assert_eq!(waiting["error"]["code"], "demo_failure");
    assert_eq!(waiting["error"]["retryable"], true);
    assert!(waiting["next_attempt_at"].is_string(), "{waiting}");

    let echo = app
        .submit_ok(json!({"type": "demo.echo", "payload": "quick"}))
        .await;
    app.wait_status(echo, "success", T).await;
    let meanwhile = app.wait_until(failing, T, |_| true).await.expect("read");
    assert_ne!(
        meanwhile["status"], "success",
        "the echo overtook the waiting retry"
    );

    let done = app.wait_status(failing, "success", T).await;
    assert_eq!(done["attempt"], 3);
    assert_eq!(done["result"], json!({"attempts": 3}));
    let retries = app
        .count(&format!(
            "select count(*) from command_attempts where command_id = '{failing}' and outcome = 'retry'"
        ))
        .await;
    assert_eq!(retries, 2);
    // The backoff really waited: 1 s before the second attempt, 5 s before the third.
    let gaps: Vec<Option<f64>> = sqlx::query_scalar(
        "select extract(epoch from started_at - lag(finished_at) over (order by attempt))::float8
           from command_attempts where command_id = $1 order by attempt",
    )
    .bind(failing)
    .fetch_all(&app.pool)
    .await
    .expect("gaps");
    let gaps: Vec<f64> = gaps.into_iter().flatten().collect();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(
        gaps[0] >= 0.9 && gaps[1] >= 4.9,
        "backoff 1 s then 5 s: {gaps:?}"
    );
    // Each delayed message went to exactly one tier: nothing is left to come back.
    let broker = TestBroker::connect(&app.env).await;
    for tier in cmdbus_domain::RETRY_TIERS {
        let queue = broker.broker.names().retry_queue(tier);
        assert_eq!(
            broker.broker.queue_depth(&queue).await.expect("depth"),
            0,
            "{queue}"
        );
    }
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_failure_is_parked_and_an_exceptions_lane_worker_reruns_it_after_the_fix() {
    let env = Env::new();
    let broken = Arc::new(AtomicBool::new(true));
    let app = TestApp::start_with(
        env.clone(),
        Role::All,
        flaky_registry(Arc::clone(&broken)),
        |_| {},
    )
    .await;
    let broker = TestBroker::connect(&env).await;
    let id = app.submit_ok(json!({"type": "test.flaky"})).await;
    let failed = app.wait_status(id, "fail", T).await;
    assert_eq!(failed["error"]["code"], "broken");
    broker
        .wait_depth(&broker.queue("test.flaky", Lane::Exceptions1), 1)
        .await;
    broker
        .wait_depth(&broker.queue("test.flaky", Lane::Main), 0)
        .await;

    // Still broken: a lane-1 re-run parks it in lane 2, never back into lane 1 or live traffic.
    let lane1 = TestApp::start_with(
        env.clone(),
        Role::Worker,
        flaky_registry(Arc::clone(&broken)),
        |config| {
            config.lane = LaneArg::Exceptions1;
        },
    )
    .await;
    app.wait_until(id, T, |v| v["status"] == "fail" && v["attempt"] == 2)
        .await
        .expect("re-run in lane 1");
    broker
        .wait_depth(&broker.queue("test.flaky", Lane::Exceptions2), 1)
        .await;
    broker
        .wait_depth(&broker.queue("test.flaky", Lane::Exceptions1), 0)
        .await;
    assert_eq!(
        app.count(&format!(
            "select count(*) from commands where id = '{id}' and lane = 'exceptions2'"
        ))
        .await,
        1
    );

    // The fix is deployed: a lane-2 worker re-runs it, and it succeeds.
    broken.store(false, Ordering::SeqCst);
    let lane2 = TestApp::start_with(
        env.clone(),
        Role::Worker,
        flaky_registry(Arc::clone(&broken)),
        |config| {
            config.lane = LaneArg::Exceptions2;
        },
    )
    .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["result"], json!({"fixed_on_attempt": 3}));
    broker
        .wait_depth(&broker.queue("test.flaky", Lane::Exceptions2), 0)
        .await;
    broker.close().await;
    lane1.stop_keeping_env().await;
    lane2.stop_keeping_env().await;
    app.stop().await;
}

#[tokio::test]
async fn an_undecodable_message_is_parked_at_once_not_requeued_forever() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let broker = TestBroker::connect(&env).await;
    let session = broker.broker.session().expect("connected");
    let channel = session.open_channel().await.expect("channel");
    channel
        .basic_publish(
            broker.broker.names().commands_exchange().into(),
            "demo.echo".into(),
            BasicPublishOptions::default(),
            b"this is not a command",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish");
    broker
        .wait_depth(&broker.queue("demo.echo", Lane::Exceptions1), 1)
        .await;
    broker
        .wait_depth(&broker.queue("demo.echo", Lane::Main), 0)
        .await;
    // The worker is still healthy.
    let id = app.submit_ok(json!({"type": "demo.echo"})).await;
    app.wait_status(id, "success", T).await;
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn bulk_replay_counts_first_then_replays_and_fences_out_old_copies() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(
            app.submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
                .await,
        );
    }
    let other = app.submit_ok(json!({"type": "demo.echo"})).await;
    for id in &failed {
        app.wait_status(*id, "fail", T).await;
    }
    app.wait_status(other, "success", T).await;
    let bulk = |dry_run: bool| {
        app.http
            .post(app.url("/v1/commands/retry"))
            .json(&json!({"type": "demo.fail", "error_code": "demo_permanent", "dry_run": dry_run}))
            .send()
    };
    let dry: Value = bulk(true)
        .await
        .expect("dry run")
        .json()
        .await
        .expect("json");
    // (`until`, the bound the dry run counted with, is the database's time: not compared.)
    assert_eq!(
        (&dry["matched"], &dry["retried"]),
        (&json!(3), &json!(0)),
        "{dry}"
    );
    assert!(dry["until"].is_string(), "{dry}");
    assert_eq!(
        app.count("select count(*) from commands where status = 'fail' and generation = 0")
            .await,
        3,
        "a dry run changes nothing"
    );
    let real: Value = bulk(false)
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&real["matched"], &real["retried"]),
        (&json!(3), &json!(3)),
        "{real}"
    );
    for id in &failed {
        app.wait_until(*id, T, |v| {
            v["status"] == "fail" && v["attempt"] == 1 && v["version"].as_i64() > Some(0)
        })
        .await
        .expect("failed again");
    }
    app.wait_count(
        "select count(*) from commands where generation = 1 and status = 'fail'",
        "replays did not finish",
        |count| count == 3,
    )
    .await;
    // An old copy of a replayed message runs nothing.
    let broker = TestBroker::connect(&env).await;
    let before = app.count("select count(*) from command_attempts").await;
    broker
        .broker
        .publish_command(&Outgoing {
            kind: "demo.fail".to_owned(),
            message: CommandMessage {
                id: failed[0],
                generation: 0,
            },
            priority: 0,
            ordering_key: None,
            lane: Lane::Main,
            partition: None,
            traceparent: None,
        })
        .await
        .expect("publish");
    broker
        .wait_depth(&broker.queue("demo.fail", Lane::Main), 0)
        .await;
    let marker = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 0}}))
        .await;
    app.wait_status(marker, "success", T).await;
    assert_eq!(
        app.count("select count(*) from command_attempts").await,
        before + 1,
        "only the marker ran"
    );
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bulk_replay_counts_against_the_quota_and_is_refused_whole_when_it_does_not_fit() {
    // Four failures, recorded by an app without a quota...
    let env = Env::new();
    let before =
        TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let mut failed = Vec::new();
    for payload in [
        json!({"permanent": true}),
        json!({"permanent": true}),
        json!({"times": 5}),
        json!({"times": 5}),
    ] {
        let body = json!({"type": "demo.fail", "payload": payload, "max_attempts": 1});
        failed.push(before.submit_ok(body).await);
    }
    for id in &failed {
        before.wait_status(*id, "fail", T).await;
    }
    before.stop_keeping_env().await;
    // ...then a quota of 3 unfinished commands, none in use.
    let app = TestApp::start_with(env, Role::All, cmdbus::builtin_registry(), |config| {
        config.auth.max_unfinished_per_tenant = 3;
    })
    .await;
    let bulk = |filter: Value| {
        app.http
            .post(app.url("/v1/commands/retry"))
            .json(&filter)
            .send()
    };
    let refused = bulk(json!({"type": "demo.fail"}))
        .await
        .expect("bulk retry");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["code"], "quota_exceeded", "{problem}");
    assert_eq!(
        app.count("select count(*) from commands where status = 'fail' and generation = 0")
            .await,
        4,
        "refused whole: nothing replayed"
    );
    // A dry run still counts; a narrower replay that fits goes through.
    let dry: Value = bulk(json!({"type": "demo.fail", "dry_run": true}))
        .await
        .expect("dry run")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&dry["matched"], &dry["retried"]),
        (&json!(4), &json!(0)),
        "{dry}"
    );
    let fits: Value = bulk(json!({"error_code": "demo_permanent"}))
        .await
        .expect("bulk retry")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&fits["matched"], &fits["retried"]),
        (&json!(2), &json!(2)),
        "{fits}"
    );
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_running_command_stops_its_handler_through_the_control_fanout() {
    // A lease of ten minutes: the heartbeat (every third of it) cannot be what delivers the cancel.
    let app = TestApp::start_tweaked(|config| {
        config.lease_secs = 600.0;
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 60000, "steps": 600}}))
        .await;
    app.wait_until(id, T, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("running");
    let started = std::time::Instant::now();
    let response = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let done = app
        .wait_status(id, "cancelled", Duration::from_secs(20))
        .await;
    println!("running command cancelled in {:?}", started.elapsed());
    assert!(done["finished_at"].is_string());
    assert!(
        done["progress"].as_f64() < Some(0.5),
        "stopped early: {done}"
    );
    let conflict = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    app.stop().await;
}
