//! Authentication and limit failures, and the one problem+json (RFC 9457) response every error
//! of the HTTP API is (its body, `cmdbus_domain::Problem`, is part of the wire contract).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cmdbus_domain::{PROBLEM_JSON, Problem};
use std::time::Duration;

/// Why a request is refused before it reaches a handler's work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No credential, or not a valid one (unknown, revoked, expired, forged).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The credential lacks a scope.
    #[error("this credential lacks the {0} scope")]
    Forbidden(&'static str),
    /// A limit is reached; try again after the wait.
    #[error("{reason}")]
    Limited {
        /// Which limit: `rate_limited` or `quota_exceeded`.
        code: &'static str,
        /// What limit.
        reason: &'static str,
        /// When to try again.
        retry_after: Duration,
    },
    /// The status database cannot be asked about the key.
    #[error("service unavailable, try again")]
    Unavailable,
}

impl AuthError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthorized(_) => "unauthorized",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::Limited { code, .. } => code,
            AuthError::Unavailable => "unavailable",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = problem_response(self.status(), self.code(), self.to_string());
        let headers = response.headers_mut();
        match &self {
            AuthError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cmdbus\""),
                );
            }
            AuthError::Limited { retry_after, .. } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}

/// An `application/problem+json` response with a stable `code`: the one error body of every
/// refusal, whichever layer makes it.
pub fn problem_response(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let mut problem = Problem::new(
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        code,
        detail,
    );
    if status.is_server_error() {
        problem.request_id = crate::request_id::current_request_id().map(|id| id.to_string());
    }
    let mut response = (status, axum::Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}
