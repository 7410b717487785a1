//! What every task of a fault run shares: the run's settings that every piece reads, the
//! processes, the counts and the violations seen so far, and the seeded choice `pick`. The run
//! loop (`run.rs`) builds it and hands it to the pieces (clients, operator, faults, cluster,
//! settle); it imports none of them but `procs`, so no piece reaches back for the loop.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::{Mutex, atomic::AtomicU64};
use uuid::Uuid;

use crate::procs::Cluster;

/// How the checker's own database sessions are named, so the fault injector spares them.
pub(crate) const APPLICATION_NAME: &str = "cmdbus-check";

/// The local PostgreSQL server (without a database).
pub(crate) const DATABASE_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The local RabbitMQ.
pub(crate) const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Lease losses a command may suffer before it fails (`CMDBUS_MAX_LEASE_LOSSES`).
pub(crate) const MAX_LEASE_LOSSES: i32 = 2;

/// Ordered partitions per type, passed to every process.
pub(crate) const PARTITIONS: u16 = 4;

/// What the run's tasks count.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) replays: AtomicU64,
    pub(crate) cancels: AtomicU64,
    pub(crate) stops: AtomicU64,
    pub(crate) kills: AtomicU64,
    pub(crate) closes: AtomicU64,
    pub(crate) terminations: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) resets: AtomicU64,
    /// Submissions no api accepted within the submitter's patience.
    pub(crate) refused: AtomicU64,
    /// PostgreSQL restarted (`pg_ctlcluster restart`, a clean shutdown).
    pub(crate) pg_restarts: AtomicU64,
    /// PostgreSQL stopped with `-m immediate` (no checkpoint: a crash) and started again.
    pub(crate) pg_crashes: AtomicU64,
    /// Every broker node SIGKILLed at once and started again.
    pub(crate) broker_kills: AtomicU64,
    /// Broker nodes killed, with when (`--faults node-kills`).
    pub(crate) node_kills: Mutex<Vec<NodeKill>>,
}

/// What every task of a run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) seed: u64,
    /// The run database's name.
    pub(crate) database: String,
    /// The run's broker namespace.
    pub(crate) namespace: String,
    pub(crate) pool: PgPool,
    pub(crate) http: reqwest::Client,
    /// The run's API key (tenant `default`, every scope), for HTTP and WebSocket clients.
    pub(crate) key: String,
    pub(crate) cluster: Cluster,
    pub(crate) counts: Counts,
    accepted: Mutex<Vec<Uuid>>,
    /// Milliseconds from the first try of each accepted submission to its answer.
    latencies: Mutex<Vec<u32>>,
    pace: Mutex<Option<Pace>>,
    violations: Mutex<Vec<String>>,
}

/// What the submitter offered and what the apis took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Commands offered (each one's submission started on schedule).
    pub(crate) offered: u64,
    /// How long the submitter offered commands (the run's duration).
    pub(crate) offering: std::time::Duration,
    /// Commands accepted by the end of the offering.
    pub(crate) accepted_in_time: u64,
    /// How long the submitter waited for a free slot (`--in-flight` submissions unanswered):
    /// while it waits, it offers less than the rate.
    pub(crate) held_back: std::time::Duration,
    /// From the first offer until the last submission in flight was answered.
    pub(crate) drained: std::time::Duration,
}

impl Shared {
    /// The run's shared state, with nothing accepted and no violation yet.
    pub(crate) fn new(
        seed: u64,
        database: String,
        namespace: String,
        pool: PgPool,
        http: reqwest::Client,
        key: String,
        cluster: Cluster,
    ) -> Self {
        Self {
            seed,
            database,
            namespace,
            pool,
            http,
            key,
            cluster,
            counts: Counts::default(),
            accepted: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            pace: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
        }
    }

    /// The commands an api accepted (202 or 200), in submission order.
    pub(crate) fn lock_accepted(&self) -> std::sync::MutexGuard<'_, Vec<Uuid>> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records how long one accepted submission took.
    pub(crate) fn record_latency(&self, took: std::time::Duration) {
        self.latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(u32::try_from(took.as_millis()).unwrap_or(u32::MAX));
    }

    /// The submission latencies at `quantiles` (0.5, 0.99, ...), in milliseconds.
    pub(crate) fn latency_quantiles<const N: usize>(&self, quantiles: [f64; N]) -> [u32; N] {
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        latencies.sort_unstable();
        quantiles.map(|q| {
            let index = ((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize;
            latencies.get(index).copied().unwrap_or(0)
        })
    }

    /// The submitter's pace, once it finished.
    pub(crate) fn lock_pace(&self) -> std::sync::MutexGuard<'_, Option<Pace>> {
        self.pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a violation seen during the run.
    pub(crate) fn violation(&self, violation: String) {
        self.violations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(violation);
    }

    /// The violations recorded so far, leaving none.
    pub(crate) fn take_violations(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .violations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A random element of `items`.
pub(crate) fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.usize(0..items.len())])
}

/// One broker node killed during the run.
#[derive(Debug, Clone)]
pub(crate) struct NodeKill {
    /// The node, as the script names it (1, 2 or 3).
    pub(crate) node: String,
    /// When the SIGKILL was sent.
    pub(crate) at: DateTime<Utc>,
}
