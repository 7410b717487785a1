//! A request id for every request: the `x-request-id` a client or proxy sent when it is a sane
//! token, a fresh one otherwise. It is echoed on the response, named in the trace span, and
//! quoted in every 5xx body, so that a user's report leads to the server's log lines without the
//! body saying anything about the server's insides.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use std::sync::Arc;
use uuid::Uuid;

/// The header that carries the id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a client; longer ones are replaced (they would bloat every log line).
const MAX_LEN: usize = 64;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request this task is serving, if it is serving one.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Middleware: gives the request its id (in its headers, for the layers inside, and in a task
/// local for the handler), runs it, and echoes the id on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value.clone());
    }
    let mut response = REQUEST_ID.scope(Arc::from(id), next.run(request)).await;
    if let Some(value) = value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Short, and made of characters that cannot break a log line or a header.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_clients() {
        assert!(acceptable("0194f1c2-7d3e-7a10-9b2c-123456789abc"));
        assert!(acceptable("trace.1:2_3"));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(65)));
        assert!(!acceptable("id with spaces"));
        assert!(!acceptable("id\u{1b}[31m"));
    }
}
