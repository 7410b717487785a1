//! Delivery guarantees of the worker against the real broker: a duplicate or stale message claims
//! nothing and runs nothing.

use crate::common::{Env, TestApp, TestBroker};
use cmdbus::Role;
use cmdbus_bus::Outgoing;
use cmdbus_domain::{CommandMessage, Lane};
use cmdbus_worker::{Context, Registry};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

const T: Duration = Duration::from_secs(30);

fn counting_registry(runs: Arc<AtomicUsize>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.count", 1),
        move |_ctx: Context, payload: Value| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(payload)
            }
        },
    );
    registry
}

/// An app running `test.count` one handler at a time, one message ahead: deliveries are handled
/// in queue order.
async fn one_at_a_time(env: &Env, runs: &Arc<AtomicUsize>) -> TestApp {
    TestApp::start_with(
        env.clone(),
        Role::All,
        counting_registry(Arc::clone(runs)),
        |config| {
            config.worker_concurrency = 1;
            config.prefetch = 1;
        },
    )
    .await
}

#[tokio::test]
async fn the_same_message_delivered_twice_runs_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let env = Env::new();
    let app = one_at_a_time(&env, &runs).await;
    let id = app
        .submit_ok(json!({"type": "test.count", "payload": 1}))
        .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Deliver the same message again, twice, plus one of a stale generation.
    let broker = TestBroker::connect(&env).await;
    for generation in [0, 0, -1] {
        let outgoing = Outgoing {
            kind: "test.count".to_owned(),
            message: CommandMessage { id, generation },
            priority: 0,
            ordering_key: None,
            lane: Lane::Main,
            partition: None,
            traceparent: None,
        };
        broker
            .broker
            .publish_command(&outgoing)
            .await
            .expect("published");
    }
    // A fresh command queued behind the copies: once it has run, every copy was handled.
    let marker = app
        .submit_ok(json!({"type": "test.count", "payload": 2}))
        .await;
    app.wait_status(marker, "success", T).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one run per command, none for the copies"
    );
    let after = app.wait_status(id, "success", T).await;
    assert_eq!(
        after["version"], done["version"],
        "the copies changed nothing"
    );
    assert_eq!(after["attempt"], 1);
    assert_eq!(
        app.count(&format!(
            "select count(*) from command_attempts where command_id = '{id}'"
        ))
        .await,
        1
    );
    broker.close().await;
    app.stop().await;
}

/// A message for a command the database does not know waits for its row a minute (a failover
/// may have lost the insert for a while), but one for a command created longer ago than that —
/// a stale copy of a command that retention purged — is dropped at once instead of cycling
/// through the 5 s delay queue for a minute.
#[tokio::test]
async fn a_message_for_a_long_gone_command_is_dropped_at_once_and_a_fresh_unknown_one_waits() {
    let runs = Arc::new(AtomicUsize::new(0));
    let env = Env::new();
    let app = one_at_a_time(&env, &runs).await;
    let broker = TestBroker::connect(&env).await;
    let delayed = broker.broker.names().retry_queue(5_000);
    let publish = |id: uuid::Uuid| {
        let broker = &broker.broker;
        async move {
            let outgoing = Outgoing {
                kind: "test.count".to_owned(),
                message: CommandMessage { id, generation: 0 },
                priority: 0,
                ordering_key: None,
                lane: Lane::Main,
                partition: None,
                traceparent: None,
            };
            broker.publish_command(&outgoing).await.expect("published");
        }
    };
    let ten_minutes_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        - 600;
    publish(uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(
        ten_minutes_ago,
        0,
        0,
        0,
    )))
    .await;
    // A command queued behind it: once it has run, the stale copy was handled.
    let marker = app
        .submit_ok(json!({"type": "test.count", "payload": 1}))
        .await;
    app.wait_status(marker, "success", T).await;
    assert_eq!(
        broker.broker.queue_depth(&delayed).await.expect("depth"),
        0,
        "the copy of a long-gone command was dropped, not delayed"
    );

    publish(uuid::Uuid::now_v7()).await;
    broker.wait_depth(&delayed, 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the marker ran");
    broker.close().await;
    app.stop().await;
}

/// A run that holds until the test lets it go (`{"hold": true}`), and runs that end at once.
fn gated_registry(gate: Arc<tokio::sync::Semaphore>) -> Registry {
    let mut registry = Registry::new();
    registry.register(
        crate::common::test_type("test.gate", 1),
        move |_ctx: Context, payload: Value| {
            let gate = Arc::clone(&gate);
            async move {
                if payload["hold"] == json!(true) {
                    let _ = gate.acquire().await;
                }
                Ok(payload)
            }
        },
    );
    registry
}

/// Unacknowledged messages of `queue`, as the broker counts them.
fn unacknowledged(queue: &str) -> u64 {
    let listing = crate::common::process::rabbitmqctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages_unacknowledged",
    ]);
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| name.trim() == queue)
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("{queue} is not listed: {listing}"))
}

/// Polls the broker until `queue` holds at most `at_most` unacknowledged messages; returns the
/// count then.
async fn wait_unacknowledged(queue: &str, at_most: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = unacknowledged(queue);
        if now <= at_most || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the broker's count
    }
}

/// Runs that end together are acked with one `multiple` frame (`acks.rs`), which acks every
/// delivery of the channel up to its tag: it must never reach a delivery whose run is still
/// going, or a crash of this worker would lose that command's message. A run holds the lowest
/// tag while forty later ones end; the broker must still count its message unacknowledged.
#[tokio::test]
async fn acks_of_runs_that_end_together_never_cover_a_run_still_going() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let env = Env::new();
    let app = TestApp::start_with(
        env.clone(),
        Role::All,
        gated_registry(Arc::clone(&gate)),
        |config| config.worker_concurrency = 16,
    )
    .await;
    let queue =
        cmdbus_domain::Names::new(env.namespace.clone()).command_queue("test.gate", Lane::Main);
    let held = app
        .submit_ok(json!({"type": "test.gate", "payload": {"hold": true}}))
        .await;
    app.wait_status(held, "running", T).await;
    // Submitted at once, they end together: their acks come in batches.
    let quick = futures_util::future::join_all(
        (0..40).map(|n| app.submit_ok(json!({"type": "test.gate", "payload": {"n": n}}))),
    )
    .await;
    for id in quick {
        app.wait_status(id, "success", T).await;
    }
    assert_eq!(
        wait_unacknowledged(&queue, 1).await,
        1,
        "the running command's message is still unacknowledged, every other one acked"
    );
    assert_eq!(
        app.get_json(&format!("/v1/commands/{held}")).await["status"],
        "running"
    );

    gate.add_permits(1);
    app.wait_status(held, "success", T).await;
    assert_eq!(
        wait_unacknowledged(&queue, 0).await,
        0,
        "its own ack follows"
    );
    app.stop().await;
}
