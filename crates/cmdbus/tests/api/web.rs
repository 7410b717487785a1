//! The console's static files (and the browser library it loads): revalidated by their `ETag`
//! (`304` while unchanged) and sent gzipped to a client that accepts it, the same bytes once
//! inflated.

use super::*;

#[tokio::test]
async fn a_static_file_is_revalidated_by_its_etag_and_gzipped_when_accepted() {
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let plain = reqwest::Client::new();
    for path in ["/", "/app.js", "/v1/client.js"] {
        let full = plain.get(app.url(path)).send().await.expect("get");
        assert_eq!(full.status(), StatusCode::OK, "{path}");
        let headers = full.headers().clone();
        let revalidated = if path.starts_with("/v1/") {
            "public, max-age=300"
        } else {
            "no-cache"
        };
        assert_eq!(headers["cache-control"], revalidated);
        assert!(
            headers.get("content-encoding").is_none(),
            "{path}: {headers:?}"
        );
        let etag = headers["etag"].to_str().expect("etag").to_owned();
        let body = full.bytes().await.expect("body");

        let again = plain
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.expect("body").is_empty());
        let stale = plain
            .get(app.url(path))
            .header("if-none-match", "\"0\"")
            .send()
            .await
            .expect("get");
        assert_eq!(stale.status(), StatusCode::OK);

        let zipped = plain
            .get(app.url(path))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .expect("get");
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        assert_eq!(zipped.headers()["vary"], "accept-encoding");
        let zipped_etag = zipped.headers()["etag"].to_str().expect("etag").to_owned();
        assert_ne!(zipped_etag, etag, "another representation, another tag");
        let gzip = zipped.bytes().await.expect("body");
        assert!(
            gzip.len() < body.len(),
            "{path}: {} of {}",
            gzip.len(),
            body.len()
        );
        // A gzip member: a 10-byte header, the deflate stream, CRC-32 and length.
        assert_eq!(&gzip[..2], &[0x1f, 0x8b]);
        let inflated =
            miniz_oxide::inflate::decompress_to_vec(&gzip[10..gzip.len() - 8]).expect("inflates");
        assert_eq!(inflated, body.to_vec(), "{path}");
        let revalidated = plain
            .get(app.url(path))
            .header("accept-encoding", "gzip")
            .header("if-none-match", &zipped_etag)
            .send()
            .await
            .expect("get");
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    }
    app.stop().await;
}
