//! API key strings: `cmdbus_` and 64 hex digits (256 random bits), the one spelling of that
//! format (minted here, checked here for a key an operator brings). Only their SHA-256 is
//! stored; a key is shown once, when it is made.

use cmdbus_store::{KeyRecord, NewKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Scopes;

/// What every key starts with, so that a leaked key is easy to recognise (and to scan for).
pub(crate) const KEY_PREFIX: &str = "cmdbus_";

/// Hex digits after the prefix: 256 random bits.
const KEY_HEX_DIGITS: usize = 64;

/// Hex digits of a key kept beside its hash, to tell keys apart in a listing.
const SHOWN_HEX_DIGITS: usize = 8;

/// Whether `key` has the format of a key: `cmdbus_` and 64 hex digits (what an operator's
/// bootstrap key must be).
pub fn is_well_formed_key(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + KEY_HEX_DIGITS
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit())
}

/// The first characters of a well-formed key: what a listing shows of it.
pub fn shown_prefix(key: &str) -> &str {
    &key[..KEY_PREFIX.len() + SHOWN_HEX_DIGITS]
}

/// A freshly made key: the string to show once, and what to store.
#[derive(Debug, Clone)]
pub struct MintedKey {
    /// The whole key; never stored.
    pub key: String,
    /// SHA-256 of `key`.
    pub hash: [u8; 32],
    /// The first characters of `key`, to tell keys apart in a listing.
    pub prefix: String,
}

/// Makes a new random key.
pub fn generate_key() -> Result<MintedKey, getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let key = format!("{KEY_PREFIX}{}", hex(&secret));
    Ok(MintedKey {
        hash: hash_key(&key),
        prefix: shown_prefix(&key).to_owned(),
        key,
    })
}

/// SHA-256 of a key string: what is stored and looked up. A key is 256 random bits, so a plain
/// hash is enough (a password hash is for secrets people choose).
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Why a key cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The tenant, name or scopes are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No randomness from the operating system.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    /// The database refused or is away.
    #[error(transparent)]
    Store(#[from] cmdbus_store::StoreError),
}

/// Whether a tenant name is acceptable: 1 to 63 of `a-z 0-9 _ . -`, starting with a letter or
/// digit (what the key table's check allows).
pub fn valid_tenant(tenant: &str) -> bool {
    let mut chars = tenant.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && tenant.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// Makes and records a key; returns the key string (shown once) and its record.
pub async fn issue_key<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    tenant: &str,
    name: &str,
    scopes: Scopes,
    development: bool,
) -> Result<(String, KeyRecord), IssueError> {
    if !valid_tenant(tenant) {
        return Err(IssueError::Invalid(format!(
            "tenant {tenant:?}: use 1 to 63 of a-z, 0-9, _ . - (starting with a letter or digit)"
        )));
    }
    // Characters, not bytes: the api's description states the length as `maxLength`.
    let length = name.chars().count();
    if length == 0 || length > 200 || name.chars().any(char::is_control) {
        return Err(IssueError::Invalid(
            "name: 1 to 200 characters, no control characters".to_owned(),
        ));
    }
    if scopes.is_empty() {
        return Err(IssueError::Invalid("name at least one scope".to_owned()));
    }
    let minted = generate_key().map_err(IssueError::Random)?;
    let record = cmdbus_store::create_key(
        executor,
        &NewKey {
            id: Uuid::now_v7(),
            tenant,
            name,
            scopes: &scopes.names(),
            secret_hash: &minted.hash,
            prefix: &minted.prefix,
            development,
        },
    )
    .await?;
    Ok((minted.key, record))
}

/// Whether `bearer` has the shape of a key (rather than of a token).
pub fn looks_like_key(bearer: &str) -> bool {
    bearer.starts_with(KEY_PREFIX)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_to_what_is_stored() {
        let one = generate_key().expect("random");
        let two = generate_key().expect("random");
        assert_ne!(one.key, two.key);
        assert_eq!(one.key.len(), KEY_PREFIX.len() + 64);
        assert!(looks_like_key(&one.key));
        assert!(is_well_formed_key(&one.key));
        assert!(!is_well_formed_key(&one.key[1..]));
        assert_eq!(hash_key(&one.key), one.hash);
        assert!(one.key.starts_with(&one.prefix));
    }

    #[test]
    fn tenant_names_are_checked() {
        for good in ["default", "acme", "a", "team-1.prod_eu"] {
            assert!(valid_tenant(good), "{good}");
        }
        for bad in ["", "Acme", "-a", "a b", "a\0", &"a".repeat(64)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }
}
