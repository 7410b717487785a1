//! Browser tokens: JSON Web Tokens signed with HMAC-SHA256 (HS256), so that an application's
//! backend can mint them with any JWT library and a shared secret, or ask `POST /v1/tokens`.
//! Only HS256 is accepted: the header's `alg` is checked, never trusted to choose.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant whose commands it reaches.
    pub tenant: String,
    /// The end user: the token sees the commands submitted for this subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Or only these commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<Uuid>,
    /// What it may do: `read` unless stated (`submit` and `operate` may be granted; `admin`
    /// never).
    #[serde(default = "read_only")]
    pub scopes: Vec<String>,
    /// Expiry, Unix seconds (required).
    pub exp: i64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, Unix seconds: refused until then (less [`LEEWAY_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The issuer: when present, it must be [`ISSUER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience, one string or a list: when present, it must name [`AUDIENCE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The API key that minted it through `POST /v1/tokens`: revoking the key revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Uuid>,
}

/// A JWT `aud`: one name or several (RFC 7519 section 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several; the token is for cmdbus if one of them is.
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, name: &str) -> bool {
        match self {
            Audience::One(one) => one == name,
            Audience::Many(many) => many.iter().any(|one| one == name),
        }
    }
}

/// The clock skew allowed between the minting backend and this server, for `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// The only `iss` a token may carry, if it carries one.
pub const ISSUER: &str = "cmdbus";
/// The `aud` a token must name, if it carries one: a token minted for another service with
/// the same secret is not one for cmdbus.
pub const AUDIENCE: &str = "cmdbus";

fn read_only() -> Vec<String> {
    vec!["read".to_owned()]
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Another algorithm than HS256.
    #[error("unsupported token algorithm (only HS256)")]
    Algorithm,
    /// The signature does not match.
    #[error("bad token signature")]
    Signature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`, or issued (`iat`) in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// An `iss` or `aud` that is not cmdbus's.
    #[error("token is for another issuer or audience")]
    Audience,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    /// Extensions the verifier must understand: none are.
    #[serde(default, skip_serializing)]
    crit: Option<serde_json::Value>,
}

fn mac(secret: &[u8], signing_input: &str) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(signing_input.as_bytes());
    mac
}

/// Signs `claims` into a compact JWT.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let header = Header {
        alg: "HS256".to_owned(),
        typ: Some("JWT".to_owned()),
        crit: None,
    };
    let encode = |value: &dyn erased::Json| URL_SAFE_NO_PAD.encode(value.to_json());
    let signing_input = format!("{}.{}", encode(&header), encode(claims));
    let signature = mac(secret, &signing_input).finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Checks a token's signature, its time window (`exp`, `nbf`, `iat`, with `now` in Unix
/// seconds) and its `iss` and `aud`, and returns its claims.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" || header.crit.is_some() {
        return Err(TokenError::Algorithm);
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    mac(secret, signing_input)
        .verify_slice(&decode(signature)?)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    let future = |at: Option<i64>| at.is_some_and(|at| at > now.saturating_add(LEEWAY_SECS));
    if future(claims.nbf) || future(claims.iat) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iss.as_deref().is_some_and(|iss| iss != ISSUER)
        || claims.aud.as_ref().is_some_and(|aud| !aud.names(AUDIENCE))
    {
        return Err(TokenError::Audience);
    }
    Ok(claims)
}

/// Serialising the header and the claims through one closure.
mod erased {
    pub(super) trait Json {
        fn to_json(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            // Plain structs of strings and numbers always serialise.
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            tenant: "acme".to_owned(),
            sub: Some("u1".to_owned()),
            ids: Vec::new(),
            scopes: read_only(),
            exp: 2_000,
            iat: Some(1_000),
            nbf: None,
            iss: None,
            aud: None,
            key: None,
        }
    }

    #[test]
    fn a_token_is_refused_before_nbf_or_when_issued_in_the_future() {
        let secret = b"secret-secret-secret-secret-32by";
        let at = |nbf: Option<i64>, iat: Option<i64>| {
            let mut claims = claims();
            claims.nbf = nbf;
            claims.iat = iat;
            verify(&sign(&claims, secret), secret, 1_500)
        };
        assert_eq!(at(Some(1_600), None), Err(TokenError::NotYetValid));
        assert_eq!(at(None, Some(1_600)), Err(TokenError::NotYetValid));
        // Within the leeway, a backend's clock slightly ahead is forgiven.
        assert!(at(Some(1_500 + LEEWAY_SECS), Some(1_500 + LEEWAY_SECS)).is_ok());
        assert!(at(Some(1_000), Some(1_000)).is_ok());
    }

    #[test]
    fn a_token_for_another_issuer_or_audience_is_refused() {
        let secret = b"secret-secret-secret-secret-32by";
        let with = |iss: Option<&str>, aud: Option<Audience>| {
            let mut claims = claims();
            claims.iss = iss.map(str::to_owned);
            claims.aud = aud;
            verify(&sign(&claims, secret), secret, 1_500)
        };
        let one = |name: &str| Some(Audience::One(name.to_owned()));
        let many = |names: &[&str]| {
            Some(Audience::Many(
                names.iter().map(|n| (*n).to_owned()).collect(),
            ))
        };
        assert_eq!(with(Some("billing"), None), Err(TokenError::Audience));
        assert_eq!(with(None, one("billing")), Err(TokenError::Audience));
        assert_eq!(
            with(None, many(&["billing", "chat"])),
            Err(TokenError::Audience)
        );
        assert!(with(Some("cmdbus"), one("cmdbus")).is_ok());
        assert!(with(None, many(&["billing", "cmdbus"])).is_ok());
        assert!(with(None, None).is_ok());
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(&claims(), b"secret-secret-secret-secret-32by");
        assert_eq!(
            verify(&token, b"secret-secret-secret-secret-32by", 1_500),
            Ok(claims())
        );
        assert_eq!(
            verify(&token, b"secret-secret-secret-secret-32by", 2_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&token, b"another-secret-another-secret-32", 1_500),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn tampering_and_other_algorithms_are_refused() {
        let secret = b"secret-secret-secret-secret-32by";
        let token = sign(&claims(), secret);
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged.tenant = "other".to_owned();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&parts.join("."), secret, 1_500),
            Err(TokenError::Signature)
        );
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let unsigned = format!("{none}.{}.", token.split('.').nth(1).expect("payload"));
        assert_eq!(verify(&unsigned, secret, 1_500), Err(TokenError::Algorithm));
        assert_eq!(verify("a.b", secret, 1_500), Err(TokenError::Malformed));
        assert_eq!(verify("", secret, 1_500), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_from_another_jwt_library_verifies() {
        // Made with PyJWT: jwt.encode({"tenant": "acme", "sub": "u1", "exp": 2000},
        // "secret-secret-secret-secret-32by", algorithm="HS256").
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZW5hbnQiOiJhY21lIiwic3ViIjoidTEiLCJleHAiOjIwMDB9.iuSSq_ys4QQvFK-JLo4Q03Ii4rpi8kFsQ8iz4LiBImU";
        let verified = verify(token, b"secret-secret-secret-secret-32by", 1_500);
        assert!(verified.is_ok(), "{verified:?}");
    }
}
