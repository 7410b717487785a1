//! What a handler gets besides its payload: who it is, progress reports, cancellation, and an
//! explicit heartbeat for long stretches of blocking work.

use cmdbus_bus::Broker;
use sqlx::PgPool;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Progress is written at most this often per command; the final state always is.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The running attempt of one command, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) cancel: CancellationToken,
    pub(crate) shared: Arc<Shared>,
}

/// Worker-wide facilities the context reaches through.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) broker: Broker,
    pub(crate) worker: String,
    pub(crate) lease: Duration,
    /// When each command last wrote its progress.
    pub(crate) last_progress: Mutex<std::collections::HashMap<Uuid, Instant>>,
}

impl Context {
    /// The command's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The command's type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// Fires when the handler should stop: the command was cancelled, the lease was lost, or the
    /// worker is shutting down past its grace period.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the handler should stop now.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports progress (0.0 to 1.0, with an optional note). Written and pushed to clients at
    /// most every 100 ms; reports in between are dropped, the last one always lands.
    pub async fn progress(&self, fraction: f32, note: impl Into<Option<String>>) {
        let now = Instant::now();
        {
            let mut last = self
                .shared
                .last_progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last
                .get(&self.id)
                .is_none_or(|at| now.duration_since(*at) >= PROGRESS_INTERVAL);
            if !due && fraction < 1.0 {
                return;
            }
            last.insert(self.id, now);
        }
        let note = note.into();
        let row = cmdbus_store::progress(
            &self.shared.pool,
            self.id,
            &self.shared.worker,
            self.attempt,
            fraction,
            note.as_deref(),
        )
        .await;
        match row {
            Ok(Some(row)) => crate::runtime::announce(&self.shared.broker, &[row]).await,
            Ok(None) => {} // lease lost: the heartbeat will cancel us
            Err(error) => tracing::warn!(%error, id = %self.id, "cannot record progress"),
        }
    }

    /// Renews the lease now; false when it was lost (the handler should stop).
    pub async fn heartbeat(&self) -> bool {
        let renewed = cmdbus_store::heartbeat(
            &self.shared.pool,
            &self.shared.worker,
            &[self.id],
            self.shared.lease,
        )
        .await;
        matches!(renewed, Ok(rows) if !rows.is_empty())
    }
}
