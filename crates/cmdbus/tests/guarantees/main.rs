//! The promises about runs, delivery and failures, each broken for real and then counted (the
//! fault tests that restart services are in `tests/faults`). `runs`: leases, fencing, replays,
//! cancels and lost messages; `effects`: runs fenced by their claim; `ops`: operations and data;
//! `order`: order by key; `delivery`: duplicate and stale messages; `failures`: retries, parking,
//! poison messages, bulk replay, cancelling a running command; `broker`: priorities, ordering
//! keys, quorum queues and unreachable brokers; `workers`: handlers that block, and worker
//! processes that die or pause.

#[path = "../common/mod.rs"]
mod common;

mod broker;
mod delivery;
mod effects;
mod failures;
mod ops;
mod order;
mod runs;
mod workers;

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
