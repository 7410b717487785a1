//! Turns the `Authorization: Bearer` value into a [`Principal`], and holds the per-caller
//! limits. Keys are looked up by hash and cached for a short time (`key_cache_ttl`, 500 ms by
//! default), so that a revocation reaches every process within that time without a database
//! read per request; lookups of uncached keys are bounded so that a flood of made-up keys cannot
//! take the database's connections.

use cmdbus_store::Db;
use cmdbus_store::KeyRecord;
use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    AuthError, Credential, Principal, Reach, Scope, Scopes,
    key::{hash_key, looks_like_key},
    limits::{RateLimit, Slot, Slots},
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
            token_max_ttl: Duration::from_secs(24 * 3_600),
            development_keys: false,
        }
    }
}

/// Lookups of uncached keys that may run at once.
const CONCURRENT_LOOKUPS: usize = 4;
/// Cached lookups kept before the cache starts over.
const CACHED_LOOKUPS: usize = 100_000;

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
    by_hash: Cache<[u8; 32]>,
    by_id: Cache<Uuid>,
    lookups: Semaphore,
    rate: RateLimit,
    long_polls: Slots,
    sockets: Slots,
}

/// Recent key lookups, found or not.
#[derive(Debug)]
struct Cache<K> {
    entries: Mutex<HashMap<K, (Option<KeyRecord>, Instant)>>,
}

impl<K: Eq + Hash + Copy> Cache<K> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, key: &K, ttl: Duration) -> Option<Option<KeyRecord>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (record, at) = entries.get(key)?;
        (at.elapsed() < ttl).then(|| record.clone())
    }

    fn put(&self, key: K, record: Option<KeyRecord>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHED_LOOKUPS {
            entries.clear();
        }
        entries.insert(key, (record, Instant::now()));
    }

    fn forget(&self, matches: impl Fn(&KeyRecord) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (record, _)| !record.as_ref().is_some_and(&matches));
    }
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
                pool,
                config,
                secret,
                by_hash: Cache::new(),
                by_id: Cache::new(),
                lookups: Semaphore::new(CONCURRENT_LOOKUPS),
                long_polls: Slots::default(),
                sockets: Slots::default(),
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
            .lookup(&self.inner.by_hash, hash, |pool| async move {
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
            .lookup(&self.inner.by_id, id, |pool| async move {
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

    /// A cached lookup, or a bounded read of the database.
    async fn lookup<K, F, Fut>(
        &self,
        cache: &Cache<K>,
        key: K,
        read: F,
    ) -> Result<Option<KeyRecord>, AuthError>
    where
        K: Eq + Hash + Copy,
        F: FnOnce(Db) -> Fut,
        Fut: Future<Output = Result<Option<KeyRecord>, cmdbus_store::StoreError>>,
    {
        let ttl = self.inner.config.key_cache_ttl;
        if let Some(record) = cache.fresh(&key, ttl) {
            return Ok(record);
        }
        let _permit = self
            .inner
            .lookups
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable)?;
        // Someone may have read it while this request waited.
        if let Some(record) = cache.fresh(&key, ttl) {
            return Ok(record);
        }
        let record = read(self.inner.pool.clone()).await.map_err(|error| {
            tracing::warn!(%error, "cannot look up a key");
            AuthError::Unavailable
        })?;
        cache.put(key, record.clone());
        Ok(record)
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

    /// A slot for one long-poll of this principal's key.
    pub fn long_poll(&self, principal: &Principal) -> Result<Slot, AuthError> {
        self.inner
            .long_polls
            .take(
                &principal.limit_key,
                self.inner.config.max_long_polls_per_key,
            )
            .ok_or(AuthError::Limited {
                code: "rate_limited",
                reason: "too many long-polls open for this credential",
                retry_after: Duration::from_secs(1),
            })
    }

    /// A slot for one WebSocket of this principal's tenant.
    pub fn socket(&self, principal: &Principal) -> Result<Slot, AuthError> {
        let tenant: Arc<str> = Arc::from(principal.tenant.as_str());
        self.inner
            .sockets
            .take(&tenant, self.inner.config.max_sockets_per_tenant)
            .ok_or(AuthError::Limited {
                code: "rate_limited",
                reason: "too many WebSockets open for this tenant",
                retry_after: Duration::from_secs(5),
            })
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
