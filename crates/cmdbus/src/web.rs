//! The web UI from `web/`, embedded in the binary so that one file is all there is to deploy
//! (every page, script, style and icon under `web/`, listed by `build.rs`).
//! Its files come with a Content-Security-Policy that allows only this origin's own scripts,
//! styles, images and connections (the page has no inline script or style: it sets styles from
//! script, which CSP allows), and may not be framed by another site.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

/// Only this origin's own files and connections (`'self'` covers its `ws:`/`wss:` too); no
/// plugins, no framing, no `<base>` rewriting, forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every file of `web/` as (route, content type, body): `index.html` at `/`, the others at
/// their path under `web/`. `build.rs` lists the directory, so a new module needs no edit here.
const ASSETS: &[(&str, &str, &str)] = &include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub(crate) fn router() -> Router {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                            (
                                header::CONTENT_SECURITY_POLICY,
                                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                            ),
                            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                        ],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}
