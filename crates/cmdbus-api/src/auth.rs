//! Who is calling: the `Caller` extractor every `/v1` route takes (it authenticates the bearer
//! credential and counts the request against its rate), `GET /v1/whoami`, and the minting of
//! browser tokens (`POST /v1/tokens`).

use axum::{
    extract::{ConnectInfo, FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use cmdbus_auth::{Claims, Credential, Principal, Reach, Scope, Scopes};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, ApiJson, ApiState,
    extract::hyphenated_ids,
    fields::{check_name, integer, nullable_name_schema, scopes_schema},
    responses::{
        BadRequest, Forbidden, PayloadTooLarge, Unavailable, UnprocessableEntity,
        UnsupportedMediaType,
    },
};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                cmdbus_auth::AuthError::Unauthorized("the Authorization header is not ASCII")
            })?),
        };
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let principal = state.auth.authorization_from(header, address).await?;
        state.auth.admit(&principal)?;
        Ok(Caller(principal))
    }
}

impl Caller {
    /// Refuses a caller without `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.has(scope) {
            Ok(&self.0)
        } else {
            Err(cmdbus_auth::AuthError::Forbidden(scope.as_str()).into())
        }
    }
}

/// `GET /v1/whoami` answer: what the credential is and may do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    /// The tenant whose commands it reaches.
    tenant: String,
    /// Its scopes.
    #[schema(schema_with = all_scopes)]
    scopes: Scopes,
    /// `key`, `token`, or `open` when the server runs without authentication.
    #[schema(value_type = String, pattern = "^(key|token|open)$")]
    kind: &'static str,
    /// A token's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// A token's command ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<Vec<Uuid>>,
    /// A token's expiry (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// The key's id (or the key that minted the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<Uuid>,
}

/// What the credential is and may do.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    operation_id = "whoami",
    tag = "access",
    responses(
        (status = 200, description = "The caller.", body = WhoAmI),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn whoami(caller: Caller) -> ApiJson<WhoAmI> {
    let principal = caller.0;
    ApiJson(WhoAmI {
        kind: match principal.credential {
            Credential::Key(_) => "key",
            Credential::Token { .. } => "token",
            Credential::Open => "open",
        },
        subject: principal.subject().map(str::to_owned),
        ids: match &principal.reach {
            Reach::Ids(ids) => Some(ids.iter().copied().collect()),
            _ => None,
        },
        expires_at: principal.expires_at(),
        key_id: principal.key_id(),
        scopes: principal.scopes,
        tenant: principal.tenant,
    })
}

/// `POST /v1/tokens` body: `sub`, or `ids`, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// The end user: the token sees the commands submitted for this subject.
    #[schema(schema_with = sub_schema)]
    sub: Option<String>,
    /// Or only these commands (at most 1,000).
    #[serde(default, deserialize_with = "hyphenated_ids")]
    #[schema(max_items = 1000)]
    ids: Vec<Uuid>,
    /// Scopes granted (default `read`; `submit` and `operate` may be added, never `admin`; the
    /// minting key must hold each).
    #[schema(schema_with = granted_scopes)]
    scopes: Option<Vec<Scope>>,
    /// Lifetime in seconds (default 600, at most the server's token maximum).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 86400)]
    ttl_secs: Option<u64>,
}

// A field whose schema comes from a function loses its doc comment: these say it again.
fn sub_schema() -> utoipa::openapi::Object {
    nullable_name_schema("The end user: the token sees the commands submitted for this subject.")
}

fn all_scopes() -> utoipa::openapi::Array {
    scopes_schema("Its scopes.", &Scope::ALL, 0)
}

fn granted_scopes() -> utoipa::openapi::Array {
    let mut schema = scopes_schema(
        "Scopes granted (default `read`; the minting key must hold each).",
        &[Scope::Read, Scope::Submit, Scope::Operate],
        1,
    );
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::Type::Array,
        utoipa::openapi::Type::Null,
    ]);
    schema
}

/// A minted token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Minted {
    /// The token, for `Authorization: Bearer` or the WebSocket's `auth` message.
    token: String,
    /// Expiry, Unix seconds.
    expires_at: i64,
}

/// Most ids one token may name.
const MAX_TOKEN_IDS: usize = 1_000;

/// Mint a browser token.
///
/// An API key mints a short-lived token for one end user (`sub`) or for named commands (`ids`)
/// of its tenant, with some of its own scopes; the application's backend hands it to the
/// browser.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "mintToken",
    tag = "access",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token.", body = Minted),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn mint(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    if matches!(caller.0.credential, Credential::Token { .. }) {
        return Err(cmdbus_auth::AuthError::Forbidden("key (a token cannot mint tokens)").into());
    }
    // Whoever may hand out reads of the tenant's commands must be able to read them.
    let principal = caller.require(Scope::Read)?;
    let scopes: Scopes = match &request.scopes {
        None => [Scope::Read].into_iter().collect(),
        Some(scopes) => scopes.iter().copied().collect(),
    };
    if scopes.is_empty() || scopes.has(Scope::Admin) {
        return Err(ApiError::InvalidField {
            field: "scopes",
            reason: "grant at least one of read, submit, operate; never admin".to_owned(),
        });
    }
    if let Some(missing) = scopes.iter().find(|scope| !principal.has(*scope)) {
        return Err(cmdbus_auth::AuthError::Forbidden(missing.as_str()).into());
    }
    if let Some(sub) = &request.sub {
        check_name("sub", sub)?;
    }
    if request.sub.is_none() && request.ids.is_empty() {
        return Err(ApiError::InvalidField {
            field: "sub",
            reason: "name the subject (sub) or the command ids the token is for".to_owned(),
        });
    }
    if request.ids.len() > MAX_TOKEN_IDS {
        return Err(ApiError::InvalidField {
            field: "ids",
            reason: format!("at most {MAX_TOKEN_IDS}"),
        });
    }
    let max_ttl = state.auth.config().token_max_ttl.as_secs();
    let ttl = request.ttl_secs.unwrap_or(600);
    if ttl == 0 || ttl > max_ttl {
        return Err(ApiError::InvalidField {
            field: "ttl_secs",
            reason: format!("must be 1 to {max_ttl}"),
        });
    }
    let now = chrono::Utc::now().timestamp();
    let expires_at = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    let claims = Claims {
        tenant: principal.tenant.clone(),
        sub: request.sub,
        ids: request.ids,
        scopes: scopes.names(),
        exp: expires_at,
        iat: Some(now),
        nbf: None,
        iss: None,
        aud: None,
        key: principal.key_id(),
    };
    let token = state.auth.mint(&claims);
    Ok((StatusCode::CREATED, ApiJson(Minted { token, expires_at })).into_response())
}
