//! The `commands` row as stored, and its conversions: to the view clients see, the event the
//! notifier pushes, and the message the bus publishes (the one builder of a row's message).

use chrono::{DateTime, Utc};
use cmdbus_domain::{
    CommandMessage, CommandView, ErrorInfo, Event, Lane, Routing, Status, TraceParent,
};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Every column of `commands`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommandRow {
    /// UUID v7.
    pub id: Uuid,
    /// Owner of the command.
    pub tenant: String,
    /// Registered command type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The handler's input, as stored (raw JSON: reading a row never fails on its contents).
    pub payload: Box<RawValue>,
    /// Lifecycle state (the `commands_status_check` constraint keeps it one of `Status`).
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// 0..=9.
    pub priority: i16,
    /// Serialises commands that share it.
    pub ordering_key: Option<String>,
    /// Makes a repeated submit return this command.
    pub idempotency_key: Option<String>,
    /// Bumped by each replay; fences out older messages.
    pub generation: i32,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// 0.0..=1.0.
    pub progress: Option<f32>,
    /// Free text of the last progress report.
    pub progress_note: Option<String>,
    /// Handler result, as stored.
    pub result: Option<Box<RawValue>>,
    /// Last error, as stored (an `ErrorInfo`).
    pub error: Option<Box<RawValue>>,
    /// Exception lane the command was parked in; `Lane::Main` (null) when it is not parked.
    #[sqlx(try_from = "Option<String>")]
    pub lane: Lane,
    /// Holder of the lease (while running) or the worker that finished it.
    pub worker: Option<String>,
    /// The lease ends here unless renewed.
    pub lease_until: Option<DateTime<Utc>>,
    /// Someone asked a running command to stop.
    pub cancel_requested: bool,
    /// Global change counter.
    pub version: i64,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// First confirmed by the broker.
    pub queued_at: Option<DateTime<Utc>>,
    /// Current attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The next attempt is due (retries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The token of the current run (while `running`).
    pub claim: Option<Uuid>,
    /// Runs that lost their lease.
    pub lease_losses: i32,
    /// Runs given back unfinished at shutdown.
    pub releases: i32,
    /// When the sweep publishes this row's message again unless it moved on.
    pub redeliver_at: Option<DateTime<Utc>>,
    /// The end user the command belongs to, if any.
    pub subject: Option<String>,
    /// When a run was last taken back from a worker that stopped renewing it.
    pub reclaimed_at: Option<DateTime<Utc>>,
    /// When a delayed command was asked to run (`scheduled` until then).
    pub run_at: Option<DateTime<Utc>>,
    /// The trace context it was submitted in (a version 00 `traceparent`), if any.
    pub traceparent: Option<String>,
}

impl CommandRow {
    /// Attempts that used up `max_attempts`: runs started, less those that lost their lease or
    /// were given back at shutdown.
    pub fn spent_attempts(&self) -> i32 {
        self.attempt - self.lease_losses - self.releases
    }

    /// Whether another run may start (a retry is worth scheduling): the attempt budget, as the
    /// claim statement checks it (`ATTEMPTS_LEFT` in `lifecycle.rs`), on this row's counts.
    pub fn has_attempts_left(&self) -> bool {
        self.spent_attempts() < self.max_attempts
    }

    /// The stored error. One written by hand that does not decode is shown as such rather than
    /// failing every read of the row.
    pub fn error_info(&self) -> Option<ErrorInfo> {
        let raw = self.error.as_ref()?;
        Some(
            serde_json::from_str(raw.get()).unwrap_or_else(|error| ErrorInfo {
                code: "unreadable_error".to_owned(),
                message: format!("the stored error does not decode: {error}"),
                retryable: false,
            }),
        )
    }

    /// The view clients see.
    pub fn view(&self) -> CommandView {
        CommandView {
            id: self.id,
            kind: self.kind.clone(),
            status: self.status,
            priority: self.priority,
            ordering_key: self.ordering_key.clone(),
            subject: self.subject.clone(),
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            progress: self.progress,
            progress_note: self.progress_note.clone(),
            result: self.result.clone(),
            error: self.error_info(),
            version: self.version,
            created_at: self.created_at,
            queued_at: self.queued_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: self.next_attempt_at,
            reclaimed_at: self.reclaimed_at,
            run_at: self.run_at,
        }
    }

    /// The trace context it was submitted in; `None` for a command recorded without one.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    /// The state-change event for this row.
    pub fn event(&self) -> Event {
        Event {
            tenant: self.tenant.clone(),
            command: self.view(),
            traceparent: self.trace_parent(),
        }
    }

    /// The row's message and where it goes: a failure to the exception lane it is parked in,
    /// anything else to the type's main queue (or its key's ordered partition, which the bus
    /// picks).
    pub fn routing(&self) -> Routing {
        Routing {
            kind: self.kind.clone(),
            message: CommandMessage {
                id: self.id,
                generation: self.generation,
            },
            priority: u8::try_from(self.priority).unwrap_or(0),
            ordering_key: self.ordering_key.clone(),
            lane: match self.status {
                Status::Fail => self.lane,
                _ => Lane::Main,
            },
            traceparent: self.trace_parent(),
        }
    }
}
