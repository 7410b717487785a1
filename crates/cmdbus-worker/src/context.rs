//! What a handler gets besides its payload: who it is, progress reports, cancellation, and an
//! explicit heartbeat. Its writes run on the worker's machinery runtime, never on the
//! handler's own (`executor.rs`).

use cmdbus_store::StoreError;
use sqlx::PgConnection;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{lease::Lease, shared::Shared};

/// Progress is written at most this often per command; the final state always is.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The running attempt of one command, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) kind: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) lease: Arc<Lease>,
    pub(crate) shared: Arc<Shared>,
}

impl Context {
    /// The command's id.
    pub fn id(&self) -> Uuid {
        self.lease.run.id
    }

    /// This run's claim token: every write of the run is fenced by it.
    pub fn claim(&self) -> Uuid {
        self.lease.run.claim
    }

    /// The command's generation (bumped by each replay).
    pub fn generation(&self) -> i32 {
        self.lease.generation
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
        &self.lease.cancel
    }

    /// Whether the handler should stop now.
    pub fn is_cancelled(&self) -> bool {
        self.lease.cancel.is_cancelled()
    }

    /// Call inside your own transaction before writing the handler's effects: it locks the
    /// command row if this run still holds its claim with a live lease, and says whether it does.
    /// Write only after `true`, in the same transaction: then no effect can ever land after the
    /// run lost its lease, was taken over, or a replay started a later generation (a replay and
    /// a cancel wait for the lock, the reaper skips the row while it is held; the lease renewal
    /// skips it too and renews it at its next tick, so the lock delays no other run's lease). With an idempotent write (a unique key per command and generation), effects
    /// are exactly once per generation.
    pub async fn hold_claim(&self, conn: &mut PgConnection) -> Result<bool, StoreError> {
        if self.lease.is_lost() {
            return Ok(false);
        }
        cmdbus_store::hold_claim(conn, self.lease.run).await
    }

    /// Reports progress (0.0 to 1.0, with an optional note). Written and pushed to clients at
    /// most every 100 ms; reports in between are dropped, the last one always lands.
    pub async fn progress(&self, fraction: f32, note: impl Into<Option<String>>) {
        let now = Instant::now();
        let id = self.lease.run.id;
        {
            let mut last = self
                .shared
                .last_progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last
                .get(&id)
                .is_none_or(|at| now.duration_since(*at) >= PROGRESS_INTERVAL);
            if !due && fraction < 1.0 {
                return;
            }
            last.insert(id, now);
        }
        let note = note.into();
        let (shared, run) = (Arc::clone(&self.shared), self.lease.run);
        // On the machinery's runtime: the pool's and the broker's connections stay bound to
        // threads no handler holds.
        let write = self.shared.machinery.spawn(async move {
            let row = cmdbus_store::progress(&shared.pool, run, fraction, note.as_deref()).await;
            match row {
                Ok(Some(row)) => shared.broker.announce([row.event()]).await,
                Ok(None) => {} // the claim is gone: the renewer cancels us
                Err(error) => tracing::warn!(%error, %id, "cannot record progress"),
            }
        });
        let _ = write.await;
    }

    /// `progress` for a blocking handler (`Registry::register_blocking`): waits on this thread
    /// for the write. Never call it from async code.
    pub fn blocking_progress(&self, fraction: f32, note: impl Into<Option<String>>) {
        let note = note.into();
        self.shared
            .machinery
            .clone()
            .block_on(self.progress(fraction, note));
    }

    /// Renews the lease now; false when it was lost (the handler should stop). Leases are
    /// renewed without it, from threads no handler holds; this is for a handler that wants to
    /// know at once.
    pub async fn heartbeat(&self) -> bool {
        if self.lease.is_lost() {
            return false;
        }
        let (shared, lease) = (Arc::clone(&self.shared), Arc::clone(&self.lease));
        let renew = self.shared.machinery.spawn(async move {
            let sent = tokio::time::Instant::now();
            let renewed = cmdbus_store::heartbeat(&shared.pool, &[lease.run], shared.lease).await;
            match renewed {
                Ok(rows) if !rows.is_empty() => {
                    // A row held by this handler's own transaction is still ours, not renewed.
                    if rows.iter().any(|(_, _, renewed)| *renewed) {
                        lease.renewed(sent, shared.lease);
                    }
                    true
                }
                Ok(_) => {
                    lease.lose("the claim is no longer ours");
                    false
                }
                Err(_) => false,
            }
        });
        renew.await.unwrap_or(false)
    }
}
