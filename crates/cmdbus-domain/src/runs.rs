//! Who ran what: one attempt of a command as its history shows it, and a worker process as the
//! console lists it. Neither carries a payload or a tenant's data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ErrorInfo;

/// One run of a command: `GET /v1/commands/{id}/attempts` lists them, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptView {
    /// The command's generation the run belonged to (bumped by each replay).
    pub generation: i32,
    /// The attempt number, from 1.
    pub attempt: i32,
    /// The worker process that ran it (`<host>-<pid>-<random>`).
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended, or was taken back; `null` while it runs.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended: `success`, `fail`, `retry`, `cancelled`, `released` (given back at
    /// shutdown) or `lease_lost` (reclaimed: its worker stopped renewing it); `null` while it
    /// runs.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub outcome: Option<String>,
    /// Why: the handler's error, or for a reclaimed run `worker_lost` (its worker stopped
    /// heartbeating; the message names it and when it was last seen).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<ErrorInfo>,
}

/// A live worker process, from its heartbeat row: `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerView {
    /// The name on every lease it holds (`<host>-<pid>-<random>`).
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The cmdbus version it runs.
    pub version: String,
    /// The exception lane it serves (`exceptions1`, `exceptions2`); `null` for the main queues.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub lane: Option<String>,
    /// Handlers it runs at once.
    pub concurrency: i32,
    /// Commands it runs now.
    pub running: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (written about every second).
    pub last_seen_at: DateTime<Utc>,
    /// Silence, in milliseconds, after which its runs are released to other workers.
    pub dead_after_ms: i32,
    /// It is draining: it takes no new work and leaves once its runs are done.
    pub stopping: bool,
}
