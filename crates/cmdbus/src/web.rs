//! The web UI from `web/`, embedded in the binary so that one file is all there is to deploy.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

/// Every file of `web/`, with its content type.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/app.js"),
    ),
    (
        "/client.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/client.js"),
    ),
    (
        "/session.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/session.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/app.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../../../web/favicon.svg"),
    ),
];

pub(crate) fn router() -> Router {
    ASSETS
        .into_iter()
        .fold(Router::new(), |router, (path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                        ],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}
