//! The problem responses the operations name, each a component of the description: one per
//! status, saying which codes it carries. The types exist only to be described, never built.

#![allow(dead_code)]

use cmdbus_domain::Problem;

use crate::error::ResetProblem;
use utoipa::ToResponse;

/// The request cannot be read: `malformed_json` (the body is not JSON), `invalid_id` (the path's
/// id is not a UUID), `invalid_query` (a query parameter is wrong), `bad_cursor` (a `since` that
/// is not a cursor this server sent), `invalid_cron` (a schedule's cron pattern cannot be read or
/// never fires), `invalid_timezone` (a schedule's time zone is not an IANA zone name), or
/// `host_not_allowed` (this server does not answer for that host name).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct BadRequest(Problem);

/// `not_found`: no such command (another tenant's ids are not found either), or no such
/// registered type (pause, resume), or no such schedule.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct NotFound(Problem);

/// `conflict`: the command's state does not allow it; for a schedule, the tenant has one of that
/// name already, or (resume) its pattern has no tick left.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Conflict(Problem);

/// `payload_too_large`: the body is over the server's limit (256 KiB by default).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct PayloadTooLarge(Problem);

/// `unsupported_media_type`: the body is not sent as `Content-Type: application/json`; or
/// `unsupported_content_encoding`: it is sent with a `Content-Encoding` other than `identity`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct UnsupportedMediaType(Problem);

/// The body is JSON that cannot be accepted: `invalid_body` (of the wrong shape), `invalid_field`
/// (a field out of range, or a value that cannot be stored), `unknown_type` (no such command
/// type is registered), `invalid_payload` (the payload does not follow its type's JSON Schema,
/// `GET /v1/types`: `errors` lists each refusal as `{"pointer": "/payload/amount", "reason":
/// "…"}`, the pointer an RFC 6901 JSON Pointer into the request body),
/// `idempotency_key_reused` (the `Idempotency-Key` names another command, as in the IETF
/// Idempotency-Key draft).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct UnprocessableEntity(Problem);

/// `unavailable`: the status database cannot be reached (to run the request, or to check its
/// credentials); try again.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Unavailable(Problem);

/// `unauthorized`: no valid `Authorization: Bearer` credentials.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Unauthorized(Problem);

/// `forbidden`: the credentials lack the scope this operation needs (or are a browser token
/// where only a key will do); `origin_not_allowed`: pages of that origin may not call this
/// server.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Forbidden(Problem);

/// `rate_limited`: too many requests (or long-polls) with these credentials; `quota_exceeded`:
/// the tenant has as many unfinished commands as it may (for a browser token: as many as tokens
/// may, the rest is kept for API keys); `subject_quota_exceeded`: this token's subject has its
/// share of them; `too_many_failed_authentications`: this address failed to authenticate too
/// often. Try again later.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))
)]
pub(crate) struct RateLimited(Problem);

/// `reset`: the cursor is ahead of this status database (from another deployment, or a database
/// restored from a backup): reload what you show, then go on from the problem's `cursor`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct ResetNotServed(ResetProblem);

/// `reset`: more changed since the cursor than the change feed replays (5,000): reload what you
/// show, then go on from the problem's `cursor`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct ResetGone(ResetProblem);
