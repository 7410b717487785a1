//! The web UI from `web/`, embedded in the binary so that one file is all there is to deploy
//! (every page, script, style and icon under `web/`, listed by `build.rs`).
//! Its files come with a Content-Security-Policy that allows only this origin's own scripts,
//! styles, images and connections (the page has no inline script or style: it sets styles from
//! script, which CSP allows), and may not be framed by another site. Each is revalidated on every
//! load (`no-cache`) by its `ETag`, answered `304` while unchanged, and sent gzipped (compressed
//! once, at build time) to a client that accepts it.

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// Only this origin's own files and connections (`'self'` covers its `ws:`/`wss:` too); no
/// plugins, no framing, no `<base>` rewriting, forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A file of `web/`, as `build.rs` embeds it.
struct Asset {
    /// `index.html` at `/`, the others at their path under `web/`.
    route: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// The same bytes, gzipped.
    gzip: &'static [u8],
    /// A hash of the bytes, quoted: the same in every build of the same file.
    etag: &'static str,
    /// The gzipped representation's tag.
    etag_gzip: &'static str,
}

/// Every file of `web/`. `build.rs` lists the directory, so a new module needs no edit here.
const ASSETS: &[Asset] = &include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub(crate) fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.route,
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        )
    })
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let gzip = accepts_gzip(request);
    let etag = if gzip { asset.etag_gzip } else { asset.etag };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_static(etag)),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    // Either representation's tag names this version of the file.
    let held = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').map(str::trim).any(|tag| {
                let tag = tag.trim_start_matches("W/");
                tag == "*" || tag == asset.etag || tag == asset.etag_gzip
            })
        });
    if held {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if gzip {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, [encoding], asset.gzip).into_response();
    }
    (headers, asset.body).into_response()
}

/// Whether `Accept-Encoding` takes gzip (`gzip` or `*`, with a quality above 0).
pub(crate) fn accepts_gzip(request: &HeaderMap) -> bool {
    let Some(accepted) = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    accepted.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            parameter
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip(&accepting("gzip, deflate, br")));
        assert!(accepts_gzip(&accepting("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&accepting("*")));
        assert!(!accepts_gzip(&accepting("gzip;q=0")));
        assert!(!accepts_gzip(&accepting("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
