//! The error body of every HTTP answer that is not a success: `application/problem+json`
//! (RFC 9457) with a stable `code`. The api and the notifier both answer with it, so its shape
//! lives here, beside the other wire types.

use serde::{Deserialize, Serialize};

/// The media type of a `Problem` body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, for people (`title`, `detail`) and for programs (`status`, `code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Always `about:blank`: `code` says which problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    #[cfg_attr(feature = "openapi", schema(minimum = 400, maximum = 599))]
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
    /// Stable, machine-readable snake_case code: `malformed_json`, `invalid_body`,
    /// `unsupported_media_type`, `unsupported_content_encoding`, `payload_too_large`,
    /// `unknown_type`, `invalid_field`, `invalid_payload`,
    /// `idempotency_key_reused`, `invalid_id`, `invalid_query`, `not_found`, `conflict`,
    /// `not_websocket`, `upgrade_required`, `unavailable`, `internal`, `unauthorized`,
    /// `forbidden`, `rate_limited`, `quota_exceeded`, `subject_quota_exceeded`,
    /// `too_many_failed_authentications`, `too_many_connections`, `host_not_allowed`,
    /// `origin_not_allowed`, `request_timeout`, `bad_cursor`, `reset` (with a `cursor` member:
    /// reload, then go on from it), `key_in_query`, `bad_request`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z][a-z0-9_]*$"))]
    pub code: String,
    /// On 5xx answers: the request's `X-Request-Id`, which the server's log lines of the failure
    /// carry (the body itself says nothing about the server's insides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// With `invalid_payload`: each part of the body its type's JSON Schema refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One part of a request body that cannot be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) into the request body: `/payload/amount`, or `/payload` for the
    /// payload as a whole.
    pub pointer: String,
    /// What is wrong there.
    pub reason: String,
}

impl Problem {
    /// A problem with `status` (its reason phrase as the title), `code` and `detail`.
    pub fn new(status: u16, title: &str, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            code: code.to_owned(),
            request_id: None,
            errors: Vec::new(),
        }
    }
}
