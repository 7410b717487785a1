//! The bottom of the worker: what every piece reaches through (the pool, the broker, the lease
//! length). It imports no other module of the crate, so every piece may use it without
//! reaching back into the loop. State changes are announced with `Broker::announce`, the one
//! spelling the api uses too.

use cmdbus_bus::Broker;
use cmdbus_store::Db;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};
use uuid::Uuid;

/// Worker-wide facilities, built once by the loop and handed to each piece.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: Db,
    pub(crate) broker: Broker,
    pub(crate) lease: Duration,
    /// How long past its due time a `queue` row waits before the sweep publishes it again.
    pub(crate) redeliver_after: Duration,
    /// When each command last wrote its progress.
    pub(crate) last_progress: Mutex<HashMap<Uuid, Instant>>,
    /// The runtime the worker's machinery runs on (not the handlers'): a handler's progress
    /// and heartbeat writes are run here.
    pub(crate) machinery: tokio::runtime::Handle,
}
