//! Turns the `Authorization: Bearer` value into a [`Principal`], and holds the per-caller
//! limits. Keys are looked up by hash and cached for a short time (`key_cache_ttl`, 500 ms by
//! default), so that a revocation reaches every process within that time without a database
//! read per request; lookups of uncached keys are bounded so that a flood of made-up keys cannot
//! take the database's connections, and keys found before are re-read in a lane of their own
//! (`lookup.rs`), so that such a flood does not delay them either. An address whose credentials
//! fail too often is refused before any lookup.

use cmdbus_store::Db;
use cmdbus_store::KeyRecord;
use std::{hash::Hash, net::IpAddr, sync::Arc, time::Duration};
use uuid::Uuid;

use crate::{
    AuthError, Credential, Principal, Reach, Scope, Scopes,
    key::{hash_key, looks_like_key},
    limits::{Bound, FailedAuth, RateLimit, Slot, Slots},
    lookup::Lookups,
    shares::{Cap, Shares},
    token::{Claims, TokenError},
};

/// Authentication and limit settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// No authentication at all: every request acts as the default tenant with every scope.
    pub open: bool,
    /// The secret that signs browser tokens; `None` uses one kept in the database.
    pub token_secret: Option<Vec<u8>>,
    /// How long a key lookup is trusted: the most a revocation takes to reach a process.
    pub key_cache_ttl: Duration,
    /// Requests per second per key or token (0: unlimited), and the burst above it.
    pub rate_per_second: u32,
    /// Requests allowed at once above the rate.
    pub rate_burst: u32,
    /// Long-polls one key holds open at once (0: unlimited).
    pub max_long_polls_per_key: usize,
    /// WebSockets one tenant holds open at once, per process (0: unlimited).
    pub max_sockets_per_tenant: usize,
    /// Command ids one tenant's WebSockets follow at once, per process (0: unlimited).
    pub max_ids_per_tenant: usize,
    /// The shares of the per-tenant caps a browser token's subject may hold, and the reserve
    /// tokens leave to keys.
    pub shares: Shares,
    /// Failed authentications one client address may make per second (0: unlimited); past its
    /// burst, the address is refused before any lookup.
    pub failed_auth_per_second: u32,
    /// Failed authentications one address may make at once above that rate.
    pub failed_auth_burst: u32,
    /// The longest a browser token may live.
    pub token_max_ttl: Duration,
    /// Whether development keys (and tokens they minted) are accepted: only by a server that
    /// listens on loopback, since such a key is printed to whoever started it.
    pub development_keys: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            open: false,
            token_secret: None,
            key_cache_ttl: Duration::from_millis(500),
            rate_per_second: 100,
            rate_burst: 200,
            max_long_polls_per_key: 100,
            max_sockets_per_tenant: 1_000,
            max_ids_per_tenant: 100_000,
            shares: Shares::default(),
            failed_auth_per_second: 10,
            failed_auth_burst: 100,
            token_max_ttl: Duration::from_secs(24 * 3_600),
            development_keys: false,
        }
    }
}

/// Shared by every request of a process.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Db,
    config: AuthConfig,
    secret: Vec<u8>,
    by_hash: Arc<Lookups<[u8; 32]>>,
    by_id: Arc<Lookups<Uuid>>,
    rate: RateLimit,
    failures: FailedAuth,
    long_polls: Slots,
    /// Sockets and followed ids, per tenant and per token bucket.
    holdings: Slots,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Authenticator {
    /// An authenticator over the key table; loads (or creates) the token secret when none is
    /// configured.
    pub async fn start(pool: Db, config: AuthConfig) -> Result<Self, cmdbus_store::StoreError> {
        let secret = match &config.token_secret {
            Some(secret) => secret.clone(),
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|error| cmdbus_store::StoreError::Corrupt {
                    id: Uuid::nil(),
                    reason: format!("no randomness for a token secret: {error}"),
                })?;
                cmdbus_store::token_secret(&pool, &fresh).await?
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                rate: RateLimit::new(config.rate_per_second, config.rate_burst),
                failures: FailedAuth::new(config.failed_auth_per_second, config.failed_auth_burst),
                pool,
                config,
                secret,
                by_hash: Arc::new(Lookups::new()),
                by_id: Arc::new(Lookups::new()),
                long_polls: Slots::default(),
                holdings: Slots::default(),
            }),
        })
    }

    /// Whether the server runs without authentication.
    pub fn is_open(&self) -> bool {
        self.inner.config.open
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Authenticates an `Authorization` header value (`Bearer <key or token>`).
    pub async fn authorization(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        if self.is_open() {
            return Ok(Principal::open());
        }
        let header = header.ok_or(AuthError::Unauthorized(
            "send Authorization: Bearer <API key or token>",
        ))?;
        // RFC 9110 §11.1: the scheme is case-insensitive.
        let bearer = header
            .trim_start()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, bearer)| bearer)
            .ok_or(AuthError::Unauthorized(
                "the Authorization header must be Bearer <API key or token>",
            ))?;
        self.bearer(bearer.trim()).await
    }

    /// Authenticates an `Authorization` header value sent from `address`: an address that has
    /// failed too often lately is refused (`429 too_many_failed_authentications`) before any
    /// lookup, and a credential it sends that fails counts against it.
    pub async fn authorization_from(
        &self,
        header: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        match header {
            // No credential sent: nothing was guessed, nothing looked up.
            None => self.authorization(None).await,
            Some(_) => {
                self.counting_failures(address, self.authorization(header))
                    .await
            }
        }
    }

    /// Authenticates a key or a token sent from `address`, as `authorization_from` does.
    pub async fn bearer_from(
        &self,
        bearer: &str,
        address: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        self.counting_failures(address, self.bearer(bearer)).await
    }

    async fn counting_failures(
        &self,
        address: Option<IpAddr>,
        authenticate: impl Future<Output = Result<Principal, AuthError>>,
    ) -> Result<Principal, AuthError> {
        let Some(address) = address else {
            return authenticate.await;
        };
        self.inner
            .failures
            .check(address)
            .map_err(|retry_after| AuthError::Limited {
                code: "too_many_failed_authentications",
                reason: "too many failed authentications from this address",
                retry_after,
            })?;
        let authenticated = authenticate.await;
        if let Err(AuthError::Unauthorized(_)) = authenticated {
            self.inner.failures.failed(address);
        }
        authenticated
    }

    /// Authenticates a key or a token.
    pub async fn bearer(&self, bearer: &str) -> Result<Principal, AuthError> {
        if self.is_open() {
            return Ok(Principal::open());
        }
        if looks_like_key(bearer) {
            self.key(bearer).await
        } else {
            self.token(bearer).await
        }
    }

    async fn key(&self, key: &str) -> Result<Principal, AuthError> {
        let hash = hash_key(key);
        let record = self
            .lookup(&self.inner.by_hash, hash, move |pool| async move {
                cmdbus_store::find_key(&pool, &hash).await
            })
            .await?;
        let record = self
            .usable(record)
            .ok_or(AuthError::Unauthorized("unknown or revoked API key"))?;
        let scopes = Scopes::parse(&record.scopes).map_err(|error| {
            tracing::warn!(key = %record.id, %error, "stored key has an unknown scope");
            AuthError::Unauthorized("unknown or revoked API key")
        })?;
        Ok(Principal {
            limit_key: Arc::from(format!("key:{}", record.id)),
            tenant: record.tenant,
            scopes,
            reach: Reach::Tenant,
            credential: Credential::Key(record.id),
        })
    }

    async fn token(&self, token: &str) -> Result<Principal, AuthError> {
        let now = unix_now();
        let claims = crate::token::verify(token, &self.inner.secret, now).map_err(|error| {
            AuthError::Unauthorized(match error {
                TokenError::Expired => "token expired",
                TokenError::NotYetValid => "token not yet valid",
                TokenError::Audience => "token is for another issuer or audience",
                TokenError::Signature => "bad token signature",
                TokenError::Algorithm => "unsupported token algorithm (only HS256)",
                TokenError::Malformed => "not an API key or a token",
            })
        })?;
        let principal = self.token_principal(&claims, now)?;
        if let Some(key) = claims.key {
            let record = self.key_by_id(key).await?;
            if record.is_none_or(|record| record.tenant != claims.tenant) {
                return Err(AuthError::Unauthorized(
                    "the key that minted this token is revoked",
                ));
            }
        }
        Ok(principal)
    }

    /// What verified claims allow.
    fn token_principal(&self, claims: &Claims, now: i64) -> Result<Principal, AuthError> {
        let scopes = Scopes::parse(&claims.scopes)
            .map_err(|_| AuthError::Unauthorized("token names an unknown scope"))?;
        if scopes.has(Scope::Admin) || scopes.is_empty() {
            return Err(AuthError::Unauthorized(
                "a token cannot grant admin, nor nothing",
            ));
        }
        let ttl = self.inner.config.token_max_ttl.as_secs();
        if claims.exp.saturating_sub(now) > i64::try_from(ttl).unwrap_or(i64::MAX) {
            return Err(AuthError::Unauthorized(
                "token lives longer than this server allows",
            ));
        }
        let (reach, limit_key) = match (&claims.sub, claims.ids.is_empty()) {
            (_, false) => (
                Reach::Ids(Arc::new(claims.ids.iter().copied().collect())),
                format!("token:{}:ids:{}", claims.tenant, ids_bucket(&claims.ids)),
            ),
            (Some(sub), true) => (
                Reach::Subject(sub.clone()),
                format!("token:{}:sub:{sub}", claims.tenant),
            ),
            (None, true) => {
                return Err(AuthError::Unauthorized("token names neither sub nor ids"));
            }
        };
        Ok(Principal {
            tenant: claims.tenant.clone(),
            scopes,
            reach,
            credential: Credential::Token {
                expires_at: claims.exp,
                key: claims.key,
            },
            limit_key: Arc::from(limit_key),
        })
    }

    async fn key_by_id(&self, id: Uuid) -> Result<Option<KeyRecord>, AuthError> {
        let record = self
            .lookup(&self.inner.by_id, id, move |pool| async move {
                cmdbus_store::key_by_id(&pool, id).await
            })
            .await?;
        Ok(self.usable(record))
    }

    /// The record if the key may be used here: live, and not a development key unless this
    /// server listens on loopback.
    fn usable(&self, record: Option<KeyRecord>) -> Option<KeyRecord> {
        record.filter(|record| {
            record.revoked_at.is_none()
                && (!record.development || self.inner.config.development_keys)
        })
    }

    /// A cached lookup, or a bounded read of the database in the key's lane (`lookup.rs`).
    async fn lookup<K, F, Fut>(
        &self,
        lookups: &Arc<Lookups<K>>,
        key: K,
        read: F,
    ) -> Result<Option<KeyRecord>, AuthError>
    where
        K: Eq + Hash + Copy + Send + Sync + 'static,
        F: Fn(Db) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<KeyRecord>, cmdbus_store::StoreError>> + Send,
    {
        let ttl = self.inner.config.key_cache_ttl;
        Lookups::get(lookups, key, ttl, &self.inner.pool, read)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot look up a key");
                AuthError::Unavailable
            })
    }

    /// Whether key `id` still holds (is not revoked): what a live WebSocket authenticated by
    /// it, or by a token it minted, rests on. Read through the key cache.
    pub async fn key_live(&self, id: Uuid) -> Result<bool, AuthError> {
        Ok(self.key_by_id(id).await?.is_some())
    }

    /// Forgets cached lookups of a key this process just revoked.
    pub fn forget(&self, id: Uuid) {
        self.inner.by_hash.forget(|record| record.id == id);
        self.inner.by_id.forget(|record| record.id == id);
    }

    /// Counts one request against the principal's rate.
    pub fn admit(&self, principal: &Principal) -> Result<(), AuthError> {
        self.inner
            .rate
            .check(&principal.limit_key)
            .map_err(|retry_after| AuthError::Limited {
                code: "rate_limited",
                reason: "too many requests for this credential",
                retry_after,
            })
    }

    /// Counts `items` more requests against the principal's rate, all or none: a batch submit's
    /// items beyond the request that carried them, so that the rate limits commands, however
    /// they are sent.
    pub fn admit_items(&self, principal: &Principal, items: u32) -> Result<(), AuthError> {
        self.inner
            .rate
            .check_n(&principal.limit_key, items)
            .map_err(|wait| match wait {
                Some(retry_after) => AuthError::Limited {
                    code: "rate_limited",
                    reason: "too many requests for this credential (a batch counts each item)",
                    retry_after,
                },
                None => AuthError::Limited {
                    code: "rate_limited",
                    reason: "the batch holds more items than this credential's rate allows at \
                             once (its burst): send smaller batches",
                    retry_after: Duration::from_secs(1),
                },
            })
    }

    /// A slot for one long-poll of this principal's key.
    pub fn long_poll(&self, principal: &Principal) -> Result<Slot, AuthError> {
        let max = self.inner.config.max_long_polls_per_key;
        let bounds = (max != 0)
            .then(|| Bound {
                key: Arc::clone(&principal.limit_key),
                max,
                refusal: AuthError::Limited {
                    code: "rate_limited",
                    reason: "too many long-polls open for this credential",
                    retry_after: Duration::from_secs(1),
                },
            })
            .into_iter()
            .collect();
        self.inner.long_polls.hold(bounds, 1)
    }

    /// A slot for one WebSocket of this principal: within its tenant's cap, and for a browser
    /// token within its subject's share and short of the keys' reserve (`shares.rs`).
    pub fn socket(&self, principal: &Principal) -> Result<Slot, AuthError> {
        let config = &self.inner.config;
        let bounds = config
            .shares
            .bounds(principal, Cap::Sockets, config.max_sockets_per_tenant);
        self.inner.holdings.hold(bounds, 1)
    }

    /// What a WebSocket of this principal follows by id, holding none yet: `Slot::resize` takes
    /// more within the tenant's cap of followed ids and the token's share of it.
    pub fn followed_ids(&self, principal: &Principal) -> Slot {
        let config = &self.inner.config;
        let bounds = config
            .shares
            .bounds(principal, Cap::Ids, config.max_ids_per_tenant);
        self.inner.holdings.empty(bounds)
    }

    /// Signs claims with this deployment's secret.
    pub fn mint(&self, claims: &Claims) -> String {
        crate::token::sign(claims, &self.inner.secret)
    }
}

/// The rate bucket of a token for named ids: a digest of the whole set (order aside), so two
/// tokens that share a first id do not pay for each other's requests.
fn ids_bucket(ids: &[Uuid]) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest as _, Sha256};
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut digest = Sha256::new();
    for id in &sorted {
        digest.update(id.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(digest.finalize())
}
