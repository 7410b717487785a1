//! The api's errors, mapped once to `application/problem+json` (RFC 9457) with a stable `code`.
//! Database and broker failures become an opaque 500/503 that is logged, never leaked.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use cmdbus_auth::{AuthError, problem_response};
use cmdbus_domain::{FieldError, PROBLEM_JSON, Problem};
use cmdbus_store::StoreError;

/// The problem a change feed's reset answers: a `Problem` and the cursor to go on from.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ResetProblem {
    #[serde(flatten)]
    problem: Problem,
    /// Reload what you show, then go on from this cursor.
    cursor: String,
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// The body is JSON of the wrong shape.
    #[error("{0}")]
    InvalidBody(String),
    /// No `Content-Type: application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// A `Content-Encoding` other than `identity`: the api does not decode bodies, and reading
    /// gzip as JSON would only fail later with a misleading reason.
    #[error("unsupported Content-Encoding {0:?}: send the body uncompressed")]
    UnsupportedContentEncoding(String),
    /// Body over the limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// The command type is not registered.
    #[error("unknown command type {0:?}")]
    UnknownType(String),
    /// A field is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload does not follow its type's JSON Schema.
    #[error(
        "the payload does not follow the JSON Schema of its type (GET /v1/types): {} error(s), \
         each in `errors`",
        .0.len()
    )]
    InvalidPayload(Vec<FieldError>),
    /// The same idempotency key was used for a different command.
    #[error("Idempotency-Key was already used for a different command")]
    IdempotencyKeyReused,
    /// A schedule's cron pattern cannot be read, or never fires.
    #[error("invalid cron: {0}")]
    InvalidCron(String),
    /// A schedule's time zone is not an IANA zone name.
    #[error("invalid timezone: {0}")]
    InvalidTimezone(String),
    /// The path's id is not a UUID.
    #[error("not an id: {0:?}")]
    InvalidId(String),
    /// A query parameter is wrong.
    #[error("{0}")]
    InvalidQuery(String),
    /// A `since` that is not a cursor this server hands out.
    #[error("{0}")]
    BadCursor(String),
    /// A cursor the change feed cannot serve: reload, then go on from `cursor`.
    #[error("{}", if *.ahead {
        "this cursor is ahead of the status database (from another deployment or a restored backup): reload, then go on from `cursor`"
    } else {
        "more changed since this cursor than the change feed replays: reload, then go on from `cursor`"
    })]
    Reset {
        /// A sound cursor to go on from.
        cursor: String,
        /// From the future (`409`); else owing too much (`410`).
        ahead: bool,
    },
    /// No such command (or not the caller's to see).
    #[error("no such command")]
    NotFound,
    /// No such key of the caller's tenant.
    #[error("no such key")]
    KeyNotFound,
    /// No such schedule of the caller's tenant.
    #[error("no such schedule")]
    ScheduleNotFound,
    /// No such registered command type, named in a path (`/v1/types/{name}/pause`).
    #[error("no such command type {0:?}")]
    TypeNotFound(String),
    /// Not authenticated, not allowed, or over a limit.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The command's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// The database is unreachable.
    #[error("service unavailable, try again")]
    Unavailable,
    /// Anything else.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidId(_)
            | ApiError::InvalidQuery(_)
            | ApiError::BadCursor(_)
            | ApiError::InvalidCron(_)
            | ApiError::InvalidTimezone(_) => StatusCode::BAD_REQUEST,
            ApiError::Reset { ahead: true, .. } => StatusCode::CONFLICT,
            ApiError::Reset { ahead: false, .. } => StatusCode::GONE,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // A reused Idempotency-Key with another request is 422, as the IETF
            // Idempotency-Key draft says: the request cannot be processed as sent.
            ApiError::InvalidBody(_)
            | ApiError::UnknownType(_)
            | ApiError::InvalidField { .. }
            | ApiError::InvalidPayload(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound
            | ApiError::KeyNotFound
            | ApiError::TypeNotFound(_)
            | ApiError::ScheduleNotFound => StatusCode::NOT_FOUND,
            ApiError::Auth(error) => error.status(),
            // The request is valid, and would be accepted in another state of the command: what
            // refuses it is state the server holds, which is what 409 says.
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::UnsupportedContentEncoding(_) => "unsupported_content_encoding",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnknownType(_) => "unknown_type",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::InvalidPayload(_) => "invalid_payload",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::InvalidCron(_) => "invalid_cron",
            ApiError::InvalidTimezone(_) => "invalid_timezone",
            ApiError::InvalidId(_) => "invalid_id",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::BadCursor(_) => "bad_cursor",
            ApiError::Reset { .. } => "reset",
            ApiError::NotFound
            | ApiError::KeyNotFound
            | ApiError::TypeNotFound(_)
            | ApiError::ScheduleNotFound => "not_found",
            ApiError::Auth(error) => error.code(),
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }
}

impl ApiError {
    /// The problem document this error answers with, as a value: what a batch submit puts in
    /// the result of an item it refused.
    pub(crate) fn to_problem(&self) -> Problem {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut problem = Problem::new(status.as_u16(), reason, self.code(), self.to_string());
        if let ApiError::InvalidPayload(errors) = self {
            problem.errors = errors.clone();
        }
        problem
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            // What the client sent cannot be stored and read back: its mistake, no alarm.
            StoreError::Unreadable { reason, .. } => ApiError::InvalidField {
                field: "payload",
                reason: reason.clone(),
            },
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|code| code.starts_with("22")) =>
            {
                ApiError::InvalidBody("a value cannot be stored by the status database".to_owned())
            }
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => {
                tracing::warn!(%error, "status database unavailable");
                ApiError::Unavailable
            }
            StoreError::Database(sqlx::Error::Database(db))
                if db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57")) =>
            {
                tracing::warn!(%error, "status database unavailable");
                ApiError::Unavailable
            }
            _ => {
                tracing::error!(%error, "store failed");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = (self.status(), self.code(), self.to_string());
        let problem = || {
            let reason = status.canonical_reason().unwrap_or("Error");
            Problem::new(status.as_u16(), reason, code, detail.clone())
        };
        match self {
            ApiError::Auth(error) => error.into_response(),
            // RFC 9110 section 15.5.16: name the codings that would have been accepted.
            ApiError::UnsupportedContentEncoding(_) => {
                let mut response = problem_response(status, code, detail);
                response.headers_mut().insert(
                    axum::http::header::ACCEPT_ENCODING,
                    axum::http::HeaderValue::from_static("identity"),
                );
                response
            }
            // Each field the schema refused, with its JSON pointer, in an `errors` member.
            ApiError::InvalidPayload(errors) => {
                let mut problem = problem();
                problem.errors = errors;
                problem_json(status, problem)
            }
            // The problem says where to go on from: a `cursor` member beside the usual ones.
            ApiError::Reset { cursor, .. } => problem_json(
                status,
                ResetProblem {
                    problem: problem(),
                    cursor,
                },
            ),
            _ => problem_response(status, code, detail),
        }
    }
}

/// A problem document with members of its own, as `application/problem+json`.
fn problem_json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(PROBLEM_JSON),
    );
    response
}
