//! Failure handling against the real app and broker: retries with backoff that never block a
//! consumer, parking in exception lanes and re-running parked work, poison messages, bulk replay
//! fenced by generation, cancelling a running command through the control fanout, priorities.

mod common;

use cmdbus::{LaneArg, Role};
use cmdbus_bus::Outgoing;
use cmdbus_domain::{CommandMessage, Lane};
use cmdbus_worker::{Context, HandlerError, Registry};
use common::{Env, TestApp, TestBroker, id_of};
use lapin::{BasicProperties, options::BasicPublishOptions};
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

const T: Duration = Duration::from_secs(60);

fn flaky_registry(broken: Arc<AtomicBool>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        common::test_type("test.flaky", 2),
        move |ctx: Context, _payload: Value| {
            let broken = Arc::clone(&broken);
            async move {
                if broken.load(Ordering::SeqCst) {
                    Err(HandlerError::permanent("broken", "the handler has a bug"))
                } else {
                    Ok(json!({"fixed_on_attempt": ctx.attempt()}))
                }
            }
        },
    );
    registry
}

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
    assert_eq!(dry, json!({"matched": 3, "retried": 0}));
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
    assert_eq!(real, json!({"matched": 3, "retried": 3}));
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

#[tokio::test]
async fn a_high_priority_command_overtakes_a_backlog() {
    let env = Env::new();
    // Only the api first: the backlog builds up in the queue.
    let app = TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let mut backlog: Vec<Uuid> = Vec::new();
    for n in 0..10 {
        backlog.push(
            app.submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 20, "steps": 1, "n": n}}))
                .await,
        );
    }
    let urgent = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 20, "steps": 1}, "priority": 9}))
        .await;
    for id in backlog.iter().chain([&urgent]) {
        app.wait_status(*id, "queue", T).await;
    }
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |config| {
            config.worker_concurrency = 1;
            config.prefetch = 1;
        },
    )
    .await;
    let mut started = Vec::new();
    for id in backlog.iter().chain([&urgent]) {
        let view = app.wait_status(*id, "success", T).await;
        started.push((
            view["started_at"].as_str().unwrap_or_default().to_owned(),
            id_of(&view),
        ));
    }
    started.sort();
    assert_eq!(
        started[0].1, urgent,
        "the priority-9 command ran first: {started:?}"
    );
    worker.stop_keeping_env().await;
    app.stop().await;
}

/// One successful run of `test.ordered`: which key, which position, when.
#[derive(Debug, Clone)]
struct Run {
    key: String,
    n: u64,
    attempt: i32,
    start: std::time::Instant,
    end: std::time::Instant,
}

fn ordered_registry(runs: Arc<std::sync::Mutex<Vec<Run>>>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        common::test_type("test.ordered", 3),
        move |ctx: Context, payload: Value| {
            let runs = Arc::clone(&runs);
            async move {
                let start = std::time::Instant::now();
                tokio::time::sleep(Duration::from_millis(60)).await;
                if payload["fail_once"] == true && ctx.attempt() == 1 {
                    return Err(HandlerError::retryable("once", "fails its first attempt"));
                }
                runs.lock().expect("runs").push(Run {
                    key: payload["key"].as_str().unwrap_or_default().to_owned(),
                    n: payload["n"].as_u64().unwrap_or_default(),
                    attempt: ctx.attempt(),
                    start,
                    end: std::time::Instant::now(),
                });
                Ok(Value::Null)
            }
        },
    );
    registry
}

#[tokio::test]
async fn commands_with_an_ordering_key_run_in_order_retries_included_while_keys_run_in_parallel() {
    let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = TestApp::start_with(
        Env::new(),
        Role::All,
        ordered_registry(Arc::clone(&runs)),
        |config| config.worker_concurrency = 8,
    )
    .await;
    // Two keys in different partitions, so that they can run side by side.
    let partitions = cmdbus::Config::defaults().partitions;
    let first = "account-1".to_owned();
    let second = (2..100)
        .map(|n| format!("account-{n}"))
        .find(|key| {
            cmdbus_domain::partition_of(key, partitions)
                != cmdbus_domain::partition_of(&first, partitions)
        })
        .expect("a key in another partition");
    let mut ids = Vec::new();
    for n in 0..6_u64 {
        for key in [&first, &second] {
            let payload = json!({"key": key, "n": n, "fail_once": key == &first && n == 2});
            ids.push(
                app.submit_ok(
                    json!({"type": "test.ordered", "payload": payload, "ordering_key": key}),
                )
                .await,
            );
        }
    }
    for id in &ids {
        app.wait_status(*id, "success", T).await;
    }
    let runs = runs.lock().expect("runs").clone();
    for key in [&first, &second] {
        let mut mine: Vec<&Run> = runs.iter().filter(|run| &run.key == key).collect();
        mine.sort_by_key(|run| run.start);
        let order: Vec<u64> = mine.iter().map(|run| run.n).collect();
        assert_eq!(
            order,
            (0..6).collect::<Vec<_>>(),
            "{key} ran in submission order"
        );
        assert!(
            mine.windows(2).all(|pair| pair[0].end <= pair[1].start),
            "{key}: one at a time"
        );
    }
    let retried = runs
        .iter()
        .find(|run| run.key == first && run.n == 2)
        .expect("run");
    assert_eq!(retried.attempt, 2, "the failed one was retried in place");
    let overlapped = runs.iter().filter(|a| a.key == first).any(|a| {
        runs.iter()
            .filter(|b| b.key == second)
            .any(|b| a.start < b.end && b.start < a.end)
    });
    assert!(overlapped, "different keys ran in parallel");
    app.stop().await;
}

#[tokio::test]
async fn quorum_queues_carry_commands_retries_and_ordered_partitions() {
    let app = TestApp::start_tweaked(|config| {
        config.queue_type = cmdbus::QueueTypeArg::Quorum;
    })
    .await;
    let plain = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    let ordered = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2, "ordering_key": "k"}))
        .await;
    let retried = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 1}}))
        .await;
    for id in [plain, ordered, retried] {
        app.wait_status(id, "success", T).await;
    }
    let output = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "name", "type", "arguments"])
        .output()
        .expect("rabbitmqctl");
    let listing = String::from_utf8_lossy(&output.stdout);
    let queue_line = |queue: &str| {
        listing
            .lines()
            .find(|line| line.split('\t').next() == Some(queue))
            .unwrap_or_else(|| panic!("{queue} exists"))
            .to_owned()
    };
    // Every queue that ever holds a command's message is replicated — main, the exception lanes,
    // the ordered partitions — and has its delivery limit set explicitly (brokers disagree on
    // the default: none on 3.x, 20 on 4.x).
    let ns = &app.env.namespace;
    let mut command_queues = vec![
        format!("{ns}.cmd.demo.echo"),
        format!("{ns}.cmd.demo.echo.exceptions1"),
        format!("{ns}.cmd.demo.echo.exceptions2"),
    ];
    command_queues.extend((0..4).map(|p| format!("{ns}.cmd.demo.echo.p{p}")));
    let limit = format!(
        r#"{{"x-delivery-limit",{}}}"#,
        cmdbus_bus::QUORUM_DELIVERY_LIMIT
    );
    for queue in &command_queues {
        let line = queue_line(queue);
        assert!(
            line.contains("\tquorum\t"),
            "{queue} is a quorum queue: {line}"
        );
        assert!(line.contains(&limit), "{queue} has {limit}: {line}");
    }
    // The delay tiers that hold retries: a message that waits in a tier is as replicated as one
    // in a queue.
    let tier = queue_line(&format!("{ns}.retry.1s"));
    assert!(tier.contains("\tquorum\t"), "{tier}");
    app.stop().await;
}

/// A quorum namespace whose queues an older cmdbus declared without `x-delivery-limit`: the
/// broker refuses to redeclare them with it (a queue's arguments never change), and cmdbus keeps
/// them as they are instead of failing to connect.
#[tokio::test]
async fn a_quorum_queue_declared_without_the_delivery_limit_is_kept_and_still_carries_commands() {
    let env = Env::new();
    let queue = format!("{}.cmd.demo.echo", env.namespace);
    {
        let connection =
            lapin::Connection::connect(common::AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut arguments = lapin::types::FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            lapin::types::AMQPValue::LongString(format!("{}.exceptions", env.namespace).into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            lapin::types::AMQPValue::LongString("demo.echo.exceptions1".into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("the old declaration");
        let _ = connection.close(200, "declared".into()).await;
    }
    let app = TestApp::start_with(env, Role::All, cmdbus::builtin_registry(), |config| {
        config.queue_type = cmdbus::QueueTypeArg::Quorum;
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": "old queue"}))
        .await;
    app.wait_status(id, "success", T).await;
    let listing = common::process::rabbitmqctl(&["list_queues", "name", "arguments"]);
    let line = listing
        .lines()
        .find(|line| line.split('\t').next() == Some(queue.as_str()))
        .expect("the queue is still there");
    assert!(
        !line.contains("x-delivery-limit"),
        "kept as declared: {line}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_broker_address_list_connects_past_a_dead_node() {
    // Port 1 refuses connections: a node that is down. Whichever node a process starts with,
    // it ends up on the live one.
    let app = TestApp::start_tweaked(|config| {
        config.amqp_url = format!("amqp://guest:guest@127.0.0.1:1/%2f, {}", common::AMQP_URL);
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": "across nodes"}))
        .await;
    app.wait_status(id, "success", T).await;
    app.stop().await;
}

/// A broker address that accepts connections and never says a word (a node stuck while it
/// recovers): the process neither hangs in its connect nor in its shutdown.
#[tokio::test]
async fn a_broker_that_accepts_and_never_answers_does_not_hang_the_process() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_address = silent.local_addr().expect("address");
    // Accepts and holds every connection, reading nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let env = Env::new();
    let mut config = env.config();
    config.amqp_url = format!("amqp://guest:guest@{silent_address}/%2f");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = tokio::spawn(cmdbus::run(
        Role::All,
        config,
        cmdbus::builtin_registry(),
        listener,
        shutdown.clone(),
    ));
    // Serving, but not ready: the broker never answered.
    common::wait_live_at(&base).await;
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), app).await;
    assert!(
        stopped.is_ok(),
        "shutdown hung on a broker that never answers"
    );
    holder.abort();
    env.teardown(&[]).await.ok();
}
