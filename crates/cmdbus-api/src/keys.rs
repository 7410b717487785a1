//! Key management over HTTP (`admin` scope): a tenant's admin makes, lists and revokes the
//! tenant's keys. Keys of other tenants are made with `cmdbus keys create`.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{IssueError, Scope, Scopes};
use cmdbus_store::KeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    extract::{PathId, parse_id},
    fields::{check_name, name_schema, scopes_schema},
    responses::{
        BadRequest, Forbidden, PayloadTooLarge, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
    },
};

/// A key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// Its id (what `DELETE /v1/keys/{id}` takes).
    id: Uuid,
    /// Owner.
    tenant: String,
    /// What it is for.
    name: String,
    /// What it may do.
    #[schema(schema_with = listed_scopes)]
    scopes: Vec<String>,
    /// Its first characters.
    prefix: String,
    /// Made by a development start.
    development: bool,
    /// Created.
    created_at: DateTime<Utc>,
    /// Revoked, if it is.
    #[schema(required = true)]
    revoked_at: Option<DateTime<Utc>>,
}

// A field whose schema comes from a function loses its doc comment: these say it again.
fn listed_scopes() -> utoipa::openapi::Array {
    scopes_schema("What it may do.", &Scope::ALL, 0)
}

fn asked_scopes() -> utoipa::openapi::Array {
    scopes_schema(
        "What it may do: any of `submit`, `read`, `operate`, `admin`.",
        &Scope::ALL,
        1,
    )
}

fn key_name() -> utoipa::openapi::Object {
    name_schema("What the key is for.")
}

impl From<KeyRecord> for KeyView {
    fn from(record: KeyRecord) -> Self {
        Self {
            id: record.id,
            tenant: record.tenant,
            name: record.name,
            scopes: record.scopes,
            prefix: record.prefix,
            development: record.development,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyRequest {
    /// What the key is for.
    #[schema(schema_with = key_name)]
    name: String,
    /// Any of `submit`, `read`, `operate`, `admin`.
    #[schema(schema_with = asked_scopes)]
    scopes: Vec<Scope>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    /// The key, for `Authorization: Bearer`. Not stored: keep it now.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

/// A list of keys.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyList {
    /// The tenant's keys, revoked ones included.
    items: Vec<KeyView>,
}

/// Make an API key of the caller's tenant.
#[utoipa::path(
    post,
    path = "/v1/keys",
    operation_id = "createKey",
    tag = "access",
    request_body = NewKeyRequest,
    responses(
        (status = 201, description = "The key, shown this once.", body = CreatedKey),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewKeyRequest>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Admin)?;
    check_name("name", &request.name)?;
    let scopes: Scopes = request.scopes.iter().copied().collect();
    let (key, record) =
        cmdbus_auth::issue_key(&state.pool, &principal.tenant, &request.name, scopes, false)
            .await
            .map_err(|error| match error {
                IssueError::Invalid(reason) => ApiError::InvalidField {
                    field: "key",
                    reason,
                },
                IssueError::Store(error) => error.into(),
                IssueError::Random(error) => {
                    tracing::error!(%error, "no randomness for a key");
                    ApiError::Internal
                }
            })?;
    tracing::info!(key = %record.id, tenant = %record.tenant, "key created");
    let created = CreatedKey {
        key,
        view: record.into(),
    };
    Ok((StatusCode::CREATED, ApiJson(created)).into_response())
}

/// The caller's tenant's keys, revoked ones included.
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "listKeys",
    tag = "access",
    responses(
        (status = 200, description = "The keys (never their secrets).", body = KeyList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<KeyList>, ApiError> {
    let principal = caller.require(Scope::Admin)?;
    let keys = cmdbus_store::list_keys(&state.pool, Some(&principal.tenant)).await?;
    Ok(ApiJson(KeyList {
        items: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revoke a key of the caller's tenant.
///
/// At once: every process stops honouring it within the key cache's time, 500 ms by default.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    operation_id = "revokeKey",
    tag = "access",
    params(("id" = uuid::Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, description = "`not_found`: no such key of the caller's tenant.",
            body = cmdbus_domain::Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let principal = caller.require(Scope::Admin)?;
    let id = parse_id(&id)?;
    cmdbus_store::revoke_key(&state.pool, Some(&principal.tenant), id)
        .await?
        .ok_or(ApiError::KeyNotFound)?;
    state.auth.forget(id);
    tracing::info!(key = %id, tenant = %principal.tenant, "key revoked");
    Ok(StatusCode::NO_CONTENT)
}
