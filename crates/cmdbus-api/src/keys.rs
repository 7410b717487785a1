//! Key management over HTTP (`admin` scope): a tenant's admin makes, lists and revokes the
//! tenant's keys. Keys of other tenants are made with `cmdbus keys create`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cmdbus_auth::{IssueError, Scope, Scopes};
use cmdbus_store::KeyRecord;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ApiError, ApiJson, ApiState, auth::Caller, commands::parse_id};

/// A key as listed (never its secret).
#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    /// Its id (what `DELETE /v1/keys/{id}` takes).
    id: Uuid,
    /// Owner.
    tenant: String,
    /// What it is for.
    name: String,
    /// What it may do.
    scopes: Vec<String>,
    /// Its first characters.
    prefix: String,
    /// Made by a development start.
    development: bool,
    /// Created.
    created_at: DateTime<Utc>,
    /// Revoked, if it is.
    revoked_at: Option<DateTime<Utc>>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyRequest {
    /// What the key is for.
    name: String,
    /// Any of `submit`, `read`, `operate`, `admin`.
    scopes: Vec<String>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize)]
pub(crate) struct CreatedKey {
    /// The key, for `Authorization: Bearer`. Not stored: keep it now.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

/// A list of keys.
#[derive(Debug, Serialize)]
pub(crate) struct KeyList {
    items: Vec<KeyView>,
}

/// `POST /v1/keys`.
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewKeyRequest>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Scope::Admin)?;
    let scopes = Scopes::parse(&request.scopes).map_err(|reason| ApiError::InvalidField {
        field: "scopes",
        reason,
    })?;
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

/// `GET /v1/keys`: the tenant's keys, revoked ones included.
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

/// `DELETE /v1/keys/{id}`: revokes a key of the tenant at once (every process stops honouring
/// it within the key cache's time, 500 ms by default).
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
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
