//! Submitting a command: validate, record (group commit), publish, answer with the view.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cmdbus_auth::{Reach, Scope};
use cmdbus_domain::{CommandView, MAX_PRIORITY};
use cmdbus_store::{CommandRow, NewCommand};
use serde::Deserialize;
use serde_json::Value;
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
};

/// `POST /v1/commands` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// A registered command type (`GET /v1/types`).
    #[serde(rename = "type")]
    #[schema(schema_with = kind_schema)]
    kind: String,
    /// The handler's input; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Payload)]
    payload: Value,
    /// 0 (lowest, the default) to 9 (highest).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 9)]
    priority: Option<i16>,
    /// Commands of one tenant sharing a key run one at a time, in submission order.
    #[schema(schema_with = ordering_key_schema)]
    ordering_key: Option<String>,
    /// Attempts allowed before the command fails for good; the type's default when absent.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<i32>,
    /// The end user it belongs to: a browser token for this subject sees it. A token that
    /// submits always submits for its own subject.
    #[schema(schema_with = subject_schema)]
    subject: Option<String>,
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
}

// A field whose schema comes from a function loses its doc comment: these say it again.
fn kind_schema() -> utoipa::openapi::Object {
    name_schema("A registered command type (`GET /v1/types`).")
}

fn ordering_key_schema() -> utoipa::openapi::Object {
    nullable_name_schema(
        "Commands of one tenant sharing a key run one at a time, in submission order.",
    )
}

fn subject_schema() -> utoipa::openapi::Object {
    nullable_name_schema(
        "The end user it belongs to: a browser token for this subject sees it. A token that \
         submits always submits for its own subject.",
    )
}

fn idempotency_key_schema() -> utoipa::openapi::Object {
    header_key_schema(
        "A repeat with the same key answers `200` with the command recorded first; the same \
         key with other fields is refused (`422 idempotency_key_reused`).",
    )
}

/// Submit a command.
///
/// The command is recorded before anything is published; the answer says `queue` once the
/// broker confirmed its message (or `new` when the confirm takes longer, and it moves on).
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
        Some(value) => {
            let key = value.to_str().map_err(|_| ApiError::InvalidField {
                field: "Idempotency-Key",
                reason: "must be visible ASCII".to_owned(),
            })?;
            check_name("Idempotency-Key", key)?;
            Some(key.to_owned())
        }
    };
    check_name("type", &request.kind)?;
    let info = state.types.get(&request.kind).await?;
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
    let command = NewCommand {
        id: Uuid::now_v7(),
        tenant: principal.tenant.clone(),
        kind: request.kind,
        payload: request.payload,
        priority,
        ordering_key: request.ordering_key,
        idempotency_key,
        max_attempts,
        subject,
    };
    state.quota.admit(&command.tenant, 1).await?;
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
    let row = publish_now(&state, submitted.row).await;
    command_response(StatusCode::ACCEPTED, &row)
}

/// Whether an earlier command recorded under the same idempotency key is this one: every field
/// the client chose must match.
fn same_command(row: &CommandRow, command: &NewCommand) -> bool {
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
fn command_response(status: StatusCode, row: &CommandRow) -> Result<Response, ApiError> {
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
