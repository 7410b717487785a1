//! Command states and the command view: the one shape of a command that every client sees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};
use std::{fmt, str::FromStr};
use uuid::Uuid;

/// Where a command is in its life. The strings are the same in the database and on the wire.
///
/// Each variant says who sets it and who moves it on; every move is one conditional statement
/// of the store (`cmdbus-store`), so two processes can never both move the same state on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded with a `run_at` in the future: it waits in PostgreSQL (no message, no handler
    /// slot) until then. Set by the api's submit; the api's sweep moves it on to `new` once it
    /// is due (and publishes it), a cancel ends it, and a reschedule re-times it.
    Scheduled,
    /// Recorded in PostgreSQL; the broker has not yet confirmed its message. Set by the api's
    /// submit, by a replay and by the sweep that releases a due `scheduled` one; the api moves it on to `queue` once the broker confirms (its
    /// relay publishes again while it stays), a worker may claim it straight away, and a cancel
    /// ends it.
    New,
    /// The broker holds its message; waiting for a worker. Set by the api (confirm), by a
    /// worker's finish (a retry, or a run given back at shutdown) and by the api's lease reaper
    /// (a run whose lease expired). A worker's claim moves it on to `running`, once no earlier
    /// command of its ordering key is unfinished and attempts are left; a cancel ends it.
    Queue,
    /// A worker holds a live lease and runs the handler. Only that run moves it on (its
    /// finish, fenced by the claim token), or the api's reaper once the lease expired: back to
    /// `queue`, or `fail` (lease lost too often), or `cancelled` (a cancel was requested).
    Running,
    /// The handler finished; `result` is set. Set by the worker's finish; final.
    Success,
    /// The handler failed for good (or attempts ran out); `error` is set and the message is
    /// parked in an exception lane. Set by the worker's finish or the reaper; final, unless an
    /// operator replays it (the api: back to `new`, a new generation) or a worker of its
    /// exception lane claims it again.
    Fail,
    /// Cancelled before it could finish. Set by the api's cancel (`new`/`queue`), or by the run's
    /// finish or the reaper once a cancel was requested; final, unless an operator replays it.
    Cancelled,
    /// A parked failure (`fail` in an exception lane) an operator decided not to run again. Set
    /// by the api's discard; final: it is never replayed, and its parked message claims nothing
    /// when a lane consumes it.
    Discarded,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 8] = [
        Status::Scheduled,
        Status::New,
        Status::Queue,
        Status::Running,
        Status::Success,
        Status::Fail,
        Status::Cancelled,
        Status::Discarded,
    ];

    /// The exact string stored and sent for this status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::New => "new",
            Status::Queue => "queue",
            Status::Running => "running",
            Status::Success => "success",
            Status::Fail => "fail",
            Status::Cancelled => "cancelled",
            Status::Discarded => "discarded",
        }
    }

    /// A terminal command never changes state again (unless an operator replays it).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Success | Status::Fail | Status::Cancelled | Status::Discarded
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no status.
#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl TryFrom<String> for Status {
    type Error = UnknownStatus;

    /// How the store reads its `status` column.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Why a command failed, as stored in `commands.error` and shown to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    /// Stable, machine-readable snake_case code (`handler_error`, `panicked`, `lease_lost`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

/// A command as clients see it: the REST body, the WebSocket payload and the event on the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandView {
    /// UUID v7, so ids sort by creation time.
    pub id: Uuid,
    /// The registered command type, e.g. `demo.sleep`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Lifecycle state.
    pub status: Status,
    /// 0 (lowest) to 9 (highest).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 9))]
    pub priority: i16,
    /// Commands sharing a key run one at a time, in submission order.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub ordering_key: Option<String>,
    /// The end user the command belongs to, as the submitter named it: a browser token for
    /// that subject sees it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub subject: Option<String>,
    /// Attempts started so far (0 before the first claim).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub attempt: i32,
    /// Attempts allowed before the command fails for good.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_attempts: i32,
    /// Fraction done, 0.0 to 1.0, as last reported by the handler.
    #[cfg_attr(feature = "openapi", schema(required = true, minimum = 0, maximum = 1))]
    pub progress: Option<f32>,
    /// Free text the handler attached to its last progress report.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub progress_note: Option<String>,
    /// The handler's result, once `success`: raw JSON, carried as stored and never re-parsed, so
    /// that any result PostgreSQL accepted reaches every client (however deep or large its
    /// numbers).
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<Value>))]
    pub result: Option<Box<RawValue>>,
    /// Why it failed, once `fail` (or why the last attempt failed, while retrying).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<ErrorInfo>,
    /// Global, strictly increasing change counter: keep a change only if its version is higher.
    pub version: i64,
    /// When the api recorded it.
    pub created_at: DateTime<Utc>,
    /// When the broker first confirmed its message.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub queued_at: Option<DateTime<Utc>>,
    /// When the current attempt started.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finished_at: Option<DateTime<Utc>>,
    /// While waiting to be retried: when the next attempt is due.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When a run was last taken back from a worker that stopped renewing its lease (the process
    /// died, paused or lost the database): the run was reclaimed and the command went on
    /// without it. The attempt history says which worker and why.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reclaimed_at: Option<DateTime<Utc>>,
    /// When it was asked to run (a delayed command): `scheduled` until then, released to the
    /// queue by the api's sweep once due. `null` for a command submitted to run at once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub run_at: Option<DateTime<Utc>>,
}

/// A registered command type, as `GET /v1/types` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeInfo {
    /// The type's name, also the routing key of its messages.
    pub name: String,
    /// What the handler does.
    pub description: String,
    /// Attempts a command of this type gets unless the submitter asks otherwise.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_attempts: i32,
    /// A payload that works, for forms and documentation.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<Value>))]
    pub example: Option<Value>,
    /// JSON Schema (2020-12) of the payload, where the handler declares one (a typed
    /// handler's is derived from its payload type): a submit whose payload it refuses is
    /// answered `422 invalid_payload`. `null`: any payload is accepted.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<Value>))]
    pub payload_schema: Option<Value>,
    /// JSON Schema (2020-12) of a successful command's `result`, where the handler declares one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<Value>))]
    pub result_schema: Option<Value>,
}

/// A command id as clients write it: the hyphenated form only (`Uuid::parse_str` also takes the
/// simple, braced and URN forms, which the description's `format: uuid` does not allow).
pub fn parse_id(raw: &str) -> Option<Uuid> {
    (raw.len() == 36)
        .then(|| Uuid::try_parse(raw).ok())
        .flatten()
}

/// Command ids as a query names them (`ids=<uuid>,<uuid>…`, the change feed's and the SSE
/// stream's selection): comma-separated, each hyphenated, at most `most`; else what is wrong.
pub fn parse_id_list(raw: &str, most: usize) -> Result<Vec<Uuid>, String> {
    let ids = raw
        .split(',')
        .map(|id| parse_id(id.trim()).ok_or_else(|| format!("`ids`: not an id: {id:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > most {
        return Err(format!("`ids` names at most {most} commands"));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
            let json = serde_json::to_string(&status).ok();
            assert_eq!(json, Some(format!("\"{}\"", status.as_str())));
        }
        assert!("done".parse::<Status>().is_err());
    }

    #[test]
    fn a_query_names_ids_hyphenated_comma_separated_and_bounded() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(parse_id_list(&format!("{a},{b}"), 2), Ok(vec![a, b]));
        assert_eq!(parse_id_list(&format!("{a}, {b}"), 2), Ok(vec![a, b]));
        assert!(
            parse_id_list(&format!("{a},{b}"), 1).is_err(),
            "over the bound"
        );
        assert!(parse_id_list("", 5).is_err());
        assert!(
            parse_id_list(&a.simple().to_string(), 5).is_err(),
            "hyphenated only"
        );
        assert!(parse_id_list(&format!("{a},"), 5).is_err());
    }
}
