//! Submitting a command: validate, record (group commit), publish, answer with the view.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{Principal, Reach, Scope};
use cmdbus_domain::{
    CommandView, MAX_PRIORITY, Status, TraceParent,
    trace::{self, TRACEPARENT_HEADER},
};
use cmdbus_store::{CommandRow, NewCommand};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument as _;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    fields::{check_name, header_key_schema, integer, name_schema, nullable_name_schema},
    payload::check_payload,
    read::etag,
    responses::{
        BadRequest, Forbidden, PayloadTooLarge, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
    },
    run_at::run_at_of,
};

/// `POST /v1/commands` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// A registered command type (`GET /v1/types`).
    #[serde(rename = "type")]
    #[schema(schema_with = kind_schema)]
    pub(crate) kind: String,
    /// The handler's input; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Payload)]
    pub(crate) payload: Value,
    /// 0 (lowest, the default) to 9 (highest).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 9)]
    pub(crate) priority: Option<i16>,
    /// Commands of one tenant sharing a key run one at a time, in submission order.
    #[schema(schema_with = ordering_key_schema)]
    pub(crate) ordering_key: Option<String>,
    /// Attempts allowed before the command fails for good; the type's default when absent.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 100)]
    pub(crate) max_attempts: Option<i32>,
    /// The end user it belongs to: a browser token for this subject sees it. A token that
    /// submits always submits for its own subject.
    #[schema(schema_with = subject_schema)]
    pub(crate) subject: Option<String>,
    /// When to run it (RFC 3339, compared with the database's clock): a time to come records
    /// the command `scheduled`, and it waits in PostgreSQL until then; one already past runs at
    /// once. Not with `delay`.
    pub(crate) run_at: Option<DateTime<Utc>>,
    /// Seconds from now to run it (fractions allowed, at most a year): the same as a `run_at`
    /// of now plus this. Not with `run_at`.
    #[schema(minimum = 0, maximum = 31_622_400)]
    pub(crate) delay: Option<f64>,
}

/// The named `Payload` schema (`payload::payload_schema`), for references.
#[derive(Debug)]
pub(crate) struct Payload;

impl utoipa::PartialSchema for Payload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        crate::payload::payload_schema().into()
    }
}

impl ToSchema for Payload {}

/// Headers of `POST /v1/commands`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the `HeaderMap`; the type only describes the header
pub(crate) struct SubmitHeaders {
    /// A repeat with the same key answers `200` with the command recorded first (the key is
    /// the tenant's, kept as long as the command); the same key with other fields is refused.
    #[param(rename = "Idempotency-Key", schema_with = idempotency_key_schema)]
    idempotency_key: Option<String>,
    /// W3C Trace Context: the caller's span. The command records it, and its spans in every
    /// process (worker, notifier) join the caller's trace; one that does not read is ignored.
    #[param(rename = "traceparent", schema_with = traceparent_schema)]
    traceparent: Option<String>,
}

// A field whose schema comes from a function loses its doc comment: these say it again.
pub(crate) fn kind_schema() -> utoipa::openapi::Object {
    name_schema("A registered command type (`GET /v1/types`).")
}

pub(crate) fn ordering_key_schema() -> utoipa::openapi::Object {
    nullable_name_schema(
        "Commands of one tenant sharing a key run one at a time, in submission order.",
    )
}

pub(crate) fn subject_schema() -> utoipa::openapi::Object {
    nullable_name_schema(
        "The end user it belongs to: a browser token for this subject sees it. A token that \
         submits always submits for its own subject.",
    )
}

fn traceparent_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some(
            "W3C Trace Context (`00-<trace id>-<parent id>-<flags>`, lowercase hex): the \
             command records it, and its spans in the api, the worker and the notifier join \
             the caller's trace. One that does not read is ignored and the command starts a \
             trace of its own, as the standard asks (so the form is described here, not \
             required by a `pattern`: no request is refused for its trace header).",
        ))
        .build()
}

fn idempotency_key_schema() -> utoipa::openapi::Object {
    header_key_schema(
        "A repeat with the same key answers `200` with the command recorded first; the same \
         key with other fields is refused (`422 idempotency_key_reused`). Keys are per caller: \
         the tenant's API keys share one key space, a browser token's are its subject's own.",
    )
}

/// Submit a command.
///
/// The command is recorded before anything is published; the answer says `queue` once the
/// broker confirmed its message (or `new` when the confirm takes longer, and it moves on). One
/// with a `run_at` (or `delay`) to come is answered `scheduled`: it waits in PostgreSQL, and
/// the api's sweep publishes it once due.
#[utoipa::path(
    post,
    path = "/v1/commands",
    operation_id = "submitCommand",
    tag = "commands",
    params(SubmitHeaders),
    request_body = SubmitRequest,
    responses(
        (status = 202, description = "Recorded.", body = CommandView, headers(
            ("Location" = String, description = "The command's URL."),
            ("ETag" = String, description = "The command's version, quoted."),
        )),
        (status = 200, description = "Recorded before under this `Idempotency-Key`.",
            body = CommandView, headers(
            ("Location" = String, description = "The command's URL."),
            ("ETag" = String, description = "The command's version, quoted."),
        )),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SubmitRequest>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Submit)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::InvalidField {
                    field: "Idempotency-Key",
                    reason: "must be visible ASCII".to_owned(),
                })?
                .to_owned(),
        ),
    };
    let command = prepare(
        &state,
        principal,
        request,
        idempotency_key,
        "Idempotency-Key",
    )
    .await?;
    let (command, span) = traced(command, &headers);
    async move {
        state.quota.admit(principal, 1).await?;
        let submitted = state.batcher.insert(command.clone()).await?;
        if !submitted.created {
            let row = submitted.row;
            if !same_command(&row, &command) {
                return Err(ApiError::IdempotencyKeyReused);
            }
            return command_response(StatusCode::OK, &row);
        }
        metrics::counter!("cmdbus_commands_submitted_total", "type" => command.kind.clone())
            .increment(1);
        let row = match submitted.row.status {
            // It waits in PostgreSQL: the sweep publishes it once due.
            Status::Scheduled => submitted.row,
            _ => publish_now(&state, submitted.row).await,
        };
        tracing::debug!(status = row.status.as_str(), "submitted");
        command_response(StatusCode::ACCEPTED, &row)
    }
    .instrument(span)
    .await
}

/// A submit checked against every rule a command must meet, and made ready to record: the same
/// for a command submitted alone and for each item of a batch (`batch_submit.rs`).
/// `key_field` names where the idempotency key came from, for its error.
pub(crate) async fn prepare(
    state: &ApiState,
    principal: &Principal,
    request: SubmitRequest,
    idempotency_key: Option<String>,
    key_field: &'static str,
) -> Result<NewCommand, ApiError> {
    if let Some(key) = &idempotency_key {
        check_name(key_field, key)?;
    }
    check_name("type", &request.kind)?;
    let kind = state.types.get(&request.kind).await?;
    let info = kind.info;
    let priority = request.priority.unwrap_or(0);
    if !(0..=i16::from(MAX_PRIORITY)).contains(&priority) {
        return Err(ApiError::InvalidField {
            field: "priority",
            reason: format!("must be 0 to {MAX_PRIORITY}"),
        });
    }
    let max_attempts = request.max_attempts.unwrap_or(info.max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::InvalidField {
            field: "max_attempts",
            reason: "must be 1 to 100".to_owned(),
        });
    }
    if let Some(key) = &request.ordering_key {
        check_name("ordering_key", key)?;
    }
    if let Some(subject) = &request.subject {
        check_name("subject", subject)?;
    }
    let run_at = run_at_of(request.run_at, request.delay)?;
    let subject = match &principal.reach {
        Reach::Tenant => request.subject,
        Reach::Subject(mine) if request.subject.as_ref().is_none_or(|asked| asked == mine) => {
            Some(mine.clone())
        }
        Reach::Subject(_) => {
            return Err(ApiError::InvalidField {
                field: "subject",
                reason: "a token submits for its own subject only".to_owned(),
            });
        }
        Reach::Ids(_) => {
            return Err(cmdbus_auth::AuthError::Forbidden("submit (for a subject)").into());
        }
    };
    check_payload(&request.payload)?;
    if let Some(schema) = &kind.schema {
        schema.check(&request.payload)?;
    }
    // An end user's keys live in the end user's own key space, apart from the backend's.
    let idempotency_scope = match &principal.reach {
        Reach::Tenant => None,
        Reach::Subject(mine) => Some(mine.clone()),
        Reach::Ids(_) => None, // refused above
    };
    Ok(NewCommand {
        id: Uuid::now_v7(),
        tenant: principal.tenant.clone(),
        kind: request.kind,
        payload: request.payload,
        priority,
        ordering_key: request.ordering_key,
        idempotency_key,
        idempotency_scope,
        max_attempts,
        subject,
        run_at,
        traceparent: None,
    })
}

/// The `submit` span of `command` (a child of the request's span, which joined the caller's
/// trace, `traceparent`), and the command with the trace context it records: the context its
/// worker's and notifier's spans join. The span's fields are on every line logged about the
/// command while it is recorded. A `traceparent` that does not read is ignored (W3C Trace
/// Context: a new trace starts), never refused.
fn traced(mut command: NewCommand, headers: &HeaderMap) -> (NewCommand, tracing::Span) {
    let span = tracing::error_span!(
        "submit",
        command.id = %command.id,
        command.type = %command.kind,
        tenant = %command.tenant,
        trace_id = tracing::field::Empty,
    );
    let incoming = headers
        .get(TRACEPARENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse);
    let traceparent = trace::context(&span, incoming.as_ref());
    span.record("trace_id", traceparent.trace_id_hex());
    command.traceparent = Some(traceparent);
    (command, span)
}

/// Whether an earlier command recorded under the same idempotency key is this one: every field
/// the client chose must match, but when it runs (a `delay` is relative to each request, so a
/// repeat answers with the command as first recorded, whatever its timing).
pub(crate) fn same_command(row: &CommandRow, command: &NewCommand) -> bool {
    row.kind == command.kind
        && serde_json::from_str::<Value>(row.payload.get()).is_ok_and(|p| p == command.payload)
        && row.priority == command.priority
        && row.ordering_key == command.ordering_key
        && row.max_attempts == command.max_attempts
        && row.subject == command.subject
}

/// Publishes a fresh row (with whatever else is being published right now), waiting at most
/// `publish_wait` for the confirm. The publish goes on in the group-commit loop, so neither a
/// slow broker nor a client that hangs up can cut it short; past the wait, the answer says `new`
/// and the command still moves on.
pub(crate) async fn publish_now(state: &ApiState, row: CommandRow) -> CommandRow {
    match tokio::time::timeout(
        state.config.publish_wait,
        state.batcher.publish(row.clone()),
    )
    .await
    {
        Ok(Some(row)) => row,
        Ok(None) | Err(_) => row,
    }
}

/// A command view with its `ETag` and `Location`.
pub(crate) fn command_response(status: StatusCode, row: &CommandRow) -> Result<Response, ApiError> {
    let view = row.view();
    let mut response = (status, ApiJson(&view)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/commands/{}", view.id)) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(etag) = HeaderValue::from_str(&etag(view.version)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}
