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

#[tokio::test]
async fn the_same_message_delivered_twice_runs_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let env = Env::new();
    // One handler at a time, one message ahead: deliveries are handled in queue order.
    let app = TestApp::start_with(
        env.clone(),
        Role::All,
        counting_registry(Arc::clone(&runs)),
        |config| {
            config.worker_concurrency = 1;
            config.prefetch = 1;
        },
    )
    .await;
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
