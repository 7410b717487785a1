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
