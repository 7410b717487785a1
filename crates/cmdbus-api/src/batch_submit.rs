//! Submitting many commands in one request (`POST /v1/commands/batch`): each item is checked
//! like a submit (`submit::prepare`), the good ones are recorded in one transaction and
//! published in one burst of confirms (`dispatch`), and the answer holds one result per item,
//! in order. The quota and the rate count items, not requests.

use axum::{
    extract::{Request, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cmdbus_auth::Scope;
use cmdbus_domain::{CommandView, Problem, Status};
use cmdbus_store::{CommandRow, NewCommand, Submitted};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    batch::insert_batch,
    dispatch::dispatch,
    extract::read_json,
    responses::{
        BadRequest, Forbidden, PayloadTooLarge, RateLimited, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
    },
    submit::{
        Payload, SubmitRequest, kind_schema, ordering_key_schema, prepare, same_command,
        subject_schema,
    },
};

/// Most commands in one batch.
pub(crate) const MAX_ITEMS: usize = 1_000;
/// A batch's body may be this many times a single submit's (`ApiConfig::body_limit`).
pub(crate) const BODY_FACTOR: usize = 16;

/// `POST /v1/commands/batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// The commands, at most 1,000; each is read on its own, so one that cannot be read is
    /// refused in its result and the others go on.
    #[schema(value_type = Vec<BatchItem>, max_items = 1000)]
    commands: Vec<Value>,
}

/// One command of a batch: a submit's body, with its idempotency key inside.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchItem {
    /// A registered command type (`GET /v1/types`).
    #[serde(rename = "type")]
    #[schema(schema_with = kind_schema)]
    kind: String,
    /// The handler's input; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Payload)]
    payload: Value,
    /// 0 (lowest, the default) to 9 (highest).
    #[serde(default, deserialize_with = "crate::fields::integer")]
    #[schema(minimum = 0, maximum = 9)]
    priority: Option<i16>,
    /// Commands of one tenant sharing a key run one at a time, in submission order.
    #[schema(schema_with = ordering_key_schema)]
    ordering_key: Option<String>,
    /// Attempts allowed before the command fails for good; the type's default when absent.
    #[serde(default, deserialize_with = "crate::fields::integer")]
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<i32>,
    /// The end user it belongs to: a browser token for this subject sees it.
    #[schema(schema_with = subject_schema)]
    subject: Option<String>,
    /// When to run it (RFC 3339); not with `delay`.
    run_at: Option<DateTime<Utc>>,
    /// Seconds from now to run it (at most a year); not with `run_at`.
    #[schema(minimum = 0, maximum = 31_622_400)]
    delay: Option<f64>,
    /// What the `Idempotency-Key` header is to a single submit: a repeat (in this batch or any
    /// later request) answers `200` with the command recorded first.
    #[schema(schema_with = idempotency_key_schema)]
    idempotency_key: Option<String>,
}

fn idempotency_key_schema() -> utoipa::openapi::Object {
    crate::fields::nullable_name_schema(
        "What the `Idempotency-Key` header is to a single submit: a repeat (in this batch or any \
         later request) answers `200` with the command recorded first.",
    )
}

impl BatchItem {
    fn split(self) -> (SubmitRequest, Option<String>) {
        let request = SubmitRequest {
            kind: self.kind,
            payload: self.payload,
            priority: self.priority,
            ordering_key: self.ordering_key,
            max_attempts: self.max_attempts,
            subject: self.subject,
            run_at: self.run_at,
            delay: self.delay,
        };
        (request, self.idempotency_key)
    }
}

/// The answer: one result per command, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResults {
    /// One per command of the request, in its order.
    results: Vec<BatchResult>,
}

/// What became of one command of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResult {
    /// What a single submit would have answered: `202` recorded, `200` recorded before under
    /// this idempotency key, or the 4xx (5xx) of its problem.
    #[schema(minimum = 200, maximum = 599)]
    status: u16,
    /// The command, when `status` is 200 or 202.
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<CommandView>,
    /// Why it was refused, otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

impl BatchResult {
    fn done(status: StatusCode, row: &CommandRow) -> Self {
        Self {
            status: status.as_u16(),
            command: Some(row.view()),
            error: None,
        }
    }

    fn refused(error: &ApiError) -> Self {
        let problem = error.to_problem();
        Self {
            status: problem.status,
            command: None,
            error: Some(problem),
        }
    }
}

/// Submit up to 1,000 commands at once.
///
/// Each command is checked like a single submit; those that pass are recorded in one
/// transaction and published in one burst of confirms. The answer is `200` with a result per
/// command, in order: `202`, `200` (an idempotent repeat) or the problem that refused it. The
/// quota of unfinished commands and the rate limit count commands: a batch past either is
/// refused whole (`429`), with nothing recorded.
#[utoipa::path(
    post,
    path = "/v1/commands/batch",
    operation_id = "submitCommands",
    tag = "commands",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "A result per command, in order.", body = BatchResults),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn submit_batch(
    State(state): State<ApiState>,
    caller: Caller,
    request: Request,
) -> Result<ApiJson<BatchResults>, ApiError> {
    let principal = caller.require(Scope::Submit)?;
    let limit = state.config.body_limit.saturating_mul(BODY_FACTOR);
    let batch: BatchRequest = read_json(request, limit).await?;
    if batch.commands.len() > MAX_ITEMS {
        return Err(ApiError::InvalidField {
            field: "commands",
            reason: format!(
                "{} commands; a batch holds at most {MAX_ITEMS}: split it",
                batch.commands.len()
            ),
        });
    }
    // The request itself counted one.
    let items = u32::try_from(batch.commands.len()).unwrap_or(u32::MAX);
    state.auth.admit_items(principal, items.saturating_sub(1))?;

    let mut checked: Vec<Result<NewCommand, ApiError>> = Vec::with_capacity(batch.commands.len());
    for item in batch.commands {
        let item = match serde_json::from_value::<BatchItem>(item) {
            Ok(item) => item,
            Err(error) => {
                checked.push(Err(ApiError::InvalidBody(error.to_string())));
                continue;
            }
        };
        let (request, key) = item.split();
        checked.push(prepare(&state, principal, request, key, "idempotency_key").await);
    }
    let good: Vec<NewCommand> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    state
        .quota
        .admit(principal, i64::try_from(good.len()).unwrap_or(i64::MAX))
        .await?;
    let recorded = record(&state, &good).await?;

    // Fresh `new` rows go to the broker in one burst; `scheduled` ones wait for the sweep.
    let fresh: Vec<CommandRow> = recorded
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|s| s.created && s.row.status == Status::New)
        .map(|s| s.row.clone())
        .collect();
    let published = publish(&state, fresh).await;

    let mut recorded = recorded.into_iter();
    let mut results = Vec::with_capacity(checked.len());
    for checked in &checked {
        let command = match checked {
            Ok(command) => command,
            Err(error) => {
                results.push(BatchResult::refused(error));
                continue;
            }
        };
        let result = match recorded.next() {
            Some(Ok(submitted)) if submitted.created => {
                metrics::counter!("cmdbus_commands_submitted_total", "type" => command.kind.clone())
                    .increment(1);
                let row = published
                    .iter()
                    .find(|row| row.id == submitted.row.id)
                    .unwrap_or(&submitted.row);
                BatchResult::done(StatusCode::ACCEPTED, row)
            }
            Some(Ok(submitted)) if same_command(&submitted.row, command) => {
                BatchResult::done(StatusCode::OK, &submitted.row)
            }
            Some(Ok(_)) => BatchResult::refused(&ApiError::IdempotencyKeyReused),
            Some(Err(error)) => BatchResult::refused(&ApiError::from(error)),
            None => BatchResult::refused(&ApiError::Internal),
        };
        results.push(result);
    }
    Ok(ApiJson(BatchResults { results }))
}

/// Records the commands in one transaction (each on its own, should the database refuse the
/// whole, so that one it refuses does not fail the others) and announces the new ones.
async fn record(
    state: &ApiState,
    commands: &[NewCommand],
) -> Result<Vec<Result<Submitted, cmdbus_store::StoreError>>, ApiError> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let mut recorded = insert_batch(state.pool.clone(), commands.to_vec()).await;
    // A database that cannot be reached fails the request, not each item.
    if let Some(at) = recorded
        .iter()
        .position(|r| r.as_ref().is_err_and(|error| !error.is_permanent()))
        && let Err(error) = recorded.swap_remove(at)
    {
        return Err(ApiError::from(error));
    }
    let created = recorded
        .iter()
        .filter_map(|r| r.as_ref().ok().filter(|s| s.created))
        .map(|s| s.row.event());
    state.broker.announce(created).await;
    Ok(recorded)
}

/// Publishes the rows in one burst, waiting at most `publish_wait` for the confirms; the work
/// goes on if the client stops waiting (the relay publishes what stays `new`).
async fn publish(state: &ApiState, rows: Vec<CommandRow>) -> Vec<CommandRow> {
    if rows.is_empty() {
        return rows;
    }
    let (pool, broker) = (state.pool.clone(), state.broker.clone());
    let redeliver_after = state.config.redeliver_after;
    let work = tokio::spawn(async move { dispatch(&pool, &broker, redeliver_after, rows).await });
    match tokio::time::timeout(state.config.publish_wait, work).await {
        Ok(Ok(Ok(rows))) => rows,
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "cannot mark a batch queued; the relay will");
            Vec::new()
        }
        Ok(Err(_)) | Err(_) => Vec::new(),
    }
}
