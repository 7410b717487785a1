//! The browser library `@cmdbus/client` (`clients/js`), served at `/v1/client.js` with its
//! declarations at `/v1/client.d.ts`, so that a page on any site can `import` it from the server
//! it talks to: the committed single-file bundle and `.d.ts`, embedded in the binary beside the
//! web UI. They are public code, not a tenant's data: any origin may load them (`*`), and caches
//! may keep them for a few minutes, revalidated by `ETag`; sent gzipped (by `build.rs`) to a
//! client that accepts it. Its tests also hold
//! `clients/js/openapi.json`, the description its wire types are generated from, to the server's.

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use std::{
    hash::{Hash as _, Hasher as _},
    sync::LazyLock,
};

/// The routes, which the origin check and the `no-store` rule of `/v1` leave alone.
pub(crate) const PATHS: [&str; 2] = ["/v1/client.js", "/v1/client.d.ts"];

/// How long a browser or proxy may use its copy before asking again.
const CACHE_CONTROL: &str = "public, max-age=300";

/// (route, content type, body, the body gzipped by `build.rs`) of each file.
const FILES: [(&str, &str, &str, &[u8]); 2] = [
    (
        PATHS[0],
        "text/javascript; charset=utf-8",
        include_str!("../../../clients/js/dist/client.js"),
        include_bytes!(concat!(env!("OUT_DIR"), "/client.js.gz")),
    ),
    (
        PATHS[1],
        "application/typescript; charset=utf-8",
        include_str!("../../../clients/js/dist/index.d.ts"),
        include_bytes!(concat!(env!("OUT_DIR"), "/client.d.ts.gz")),
    ),
];

/// A strong validator per file and representation (plain, gzipped): a hash of its bytes, so
/// that a new build changes it.
static ETAGS: LazyLock<[[HeaderValue; 2]; 2]> =
    LazyLock::new(|| FILES.map(|(_, _, body, _)| [etag(body, ""), etag(body, "-gz")]));

fn etag(body: &str, representation: &str) -> HeaderValue {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    HeaderValue::from_str(&format!("\"{:016x}{representation}\"", hasher.finish()))
        .unwrap_or(HeaderValue::from_static("\"0\""))
}

pub(crate) fn router() -> Router {
    (0..FILES.len()).fold(Router::new(), |router, index| {
        let (path, ..) = FILES[index];
        router.route(
            path,
            get(move |headers: HeaderMap| async move { serve(index, &headers) }),
        )
    })
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let (_, content_type, body, gzipped) = FILES[index];
    let gzip = crate::web::accepts_gzip(request);
    let [plain_tag, gzip_tag] = &ETAGS[index];
    let etag = if gzip { gzip_tag } else { plain_tag };
    let headers = [
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::ETAG, etag.clone()),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    // Either representation's tag names this version of the file.
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').map(str::trim).any(|tag| {
                let tag = tag.trim_start_matches("W/");
                tag == "*" || tag == plain_tag || tag == gzip_tag
            })
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if gzip {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, [encoding], gzipped).into_response();
    }
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `clients/js/openapi.json` is what this server describes: `clients/js/check.sh` generates
    /// the library's wire types from it, so a change to a wire type reaches the library or fails
    /// here. Compared as JSON values: the order of an object's keys is not stable from one
    /// build to the next. `CMDBUS_UPDATE_OPENAPI=1` rewrites the file when it differs.
    #[test]
    fn the_library_s_openapi_snapshot_is_the_server_s() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/openapi.json");
        let current = serde_json::to_value(crate::openapi()).expect("json");
        let committed: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if committed == current {
            return;
        }
        if std::env::var_os("CMDBUS_UPDATE_OPENAPI").is_some() {
            let mut text = serde_json::to_string_pretty(&current).expect("json");
            text.push('\n');
            std::fs::write(&path, text).expect("write clients/js/openapi.json");
            return;
        }
        panic!(
            "clients/js/openapi.json is stale: run `CMDBUS_UPDATE_OPENAPI=1 cargo test -p cmdbus \
             --lib library` then `clients/js/check.sh --update`, and commit what they change"
        );
    }
}
