//! The api's extractors. Every rejection is an `ApiError`, so that a body, a query or a path
//! the api cannot read gets the same problem+json answer as any other mistake, never axum's
//! plain-text one. `read_json` reads a body with a bound of its own (the batch submit's).

use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Path, Query, Request, rejection::JsonRejection},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt as _;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::ApiError;

/// `Json` whose rejections use the same problem body as every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Bodies are read as sent: any coding but `identity` is refused before the body is.
        for coding in request.headers().get_all(header::CONTENT_ENCODING) {
            let coding = String::from_utf8_lossy(coding.as_bytes());
            if coding
                .split(',')
                .any(|one| !one.trim().is_empty() && !one.trim().eq_ignore_ascii_case("identity"))
            {
                return Err(ApiError::UnsupportedContentEncoding(coding.into_owned()));
            }
        }
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(refusal(rejection)),
        }
    }
}

/// A JSON body already read (a batch's, read with its own bound), refused like `ApiJson`'s.
fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    axum::Json::<T>::from_bytes(bytes)
        .map(|axum::Json(value)| value)
        .map_err(refusal)
}

/// What a body `axum::Json` rejects answers.
fn refusal(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(error) => ApiError::MalformedJson(error.body_text()),
        JsonRejection::JsonDataError(error) => ApiError::InvalidBody(error.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        rejection => ApiError::MalformedJson(rejection.body_text()),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejection is a `400 invalid_query` problem.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))
    }
}

/// The `{id}` of a path, as sent (`parse_id` reads it once the caller is known to be allowed):
/// a segment that is not even text is `400 invalid_id`, not axum's plain-text answer.
#[derive(Debug, Clone)]
pub(crate) struct PathId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(raw)| Self(raw))
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))
    }
}

/// An id of a path: a UUID in its hyphenated form (the only form the api hands out, and the one
/// the description states), else `400 invalid_id`.
pub(crate) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid(raw).ok_or_else(|| ApiError::InvalidId(raw.to_owned()))
}

/// A UUID in the hyphenated form only: `Uuid::parse_str` also takes the simple, braced and URN
/// forms, which the description (`format: uuid`) does not allow.
pub(crate) fn parse_uuid(raw: &str) -> Option<Uuid> {
    cmdbus_domain::parse_id(raw)
}

/// A list of ids in a body, each in the hyphenated form (`Uuid`'s own deserializer takes every
/// form).
pub(crate) fn hyphenated_ids<'de, D>(deserializer: D) -> Result<Vec<Uuid>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::{Deserialize, de::Error};
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|raw| parse_uuid(raw).ok_or_else(|| D::Error::custom(format!("not an id: {raw:?}"))))
        .collect()
}

/// The body as JSON, read up to `limit` bytes: `ApiJson` with a bound of its own instead of the
/// router's (which a batch of many commands outgrows), and the same refusals.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request,
    limit: usize,
) -> Result<T, ApiError> {
    let (parts, body) = request.into_parts();
    for coding in parts.headers.get_all(header::CONTENT_ENCODING) {
        let coding = String::from_utf8_lossy(coding.as_bytes());
        if coding
            .split(',')
            .any(|one| !one.trim().is_empty() && !one.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(ApiError::UnsupportedContentEncoding(coding.into_owned()));
        }
    }
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let essence = value.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 17
                    && essence[..12].eq_ignore_ascii_case("application/")
                    && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
        })
        .unwrap_or(false);
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = read_limited(body, limit).await?;
    json_from_bytes(&bytes)
}

/// The body's bytes, refused past `limit`.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::MalformedJson(format!("cannot read the body: {error}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_uuid;

    #[test]
    fn only_the_hyphenated_form_is_an_id() {
        let id = "0196f3a4-6c1e-7d2a-9b3c-4d5e6f708192";
        assert!(parse_uuid(id).is_some());
        assert!(parse_uuid(&id.to_uppercase()).is_some());
        assert!(parse_uuid(&id.replace('-', "")).is_none());
        assert!(parse_uuid(&format!("{{{id}}}")).is_none());
        assert!(parse_uuid(&format!("urn:uuid:{id}")).is_none());
        assert!(parse_uuid("").is_none());
    }
}
