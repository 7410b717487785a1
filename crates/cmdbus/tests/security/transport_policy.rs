//! What browsers may do with the server: only its own host names are served, only its own and
//! the listed origins may call it or open WebSockets (the CORS headers agree), every response is
//! marked against sniffing and the web UI against framing, every `/v1` answer against caching;
//! and every request has an id, quoted
//! in 5xx bodies that say nothing else about the server's insides.

use crate::common::{Env, TestApp, WsClient, process::PgLink};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;

const ALLOWED: &str = "http://app.example";

async fn app() -> TestApp {
    TestApp::start_tweaked(|c| {
        c.http.allowed_origins = vec![ALLOWED.to_owned()];
    })
    .await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_loopback_names_are_served() {
    let app = app().await;
    let port = app.base.rsplit(':').next().expect("port").to_owned();
    for (host, status) in [
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        (format!("rebound.example:{port}"), 400),
    ] {
        let response = app
            .http
            .get(app.url("/v1/types"))
            .header("host", &host)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "Host: {host}");
        if status == 400 {
            assert_eq!(
                header(&response, "content-type"),
                "application/problem+json"
            );
            let problem: Value = response.json().await.expect("problem");
            assert_eq!(problem["code"], "host_not_allowed");
        }
    }
    // Plain HTTP/1.0 without a Host is refused too, over a raw socket; health probes, which
    // address the server by whatever name reaches it, are not.
    for (path, status) in [("/", "400"), ("/healthz", "200")] {
        let mut socket = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .expect("connect");
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        socket.write_all(request.as_bytes()).await.expect("request");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.expect("answer");
        assert!(
            answer.starts_with(&format!("HTTP/1.0 {status}")),
            "{path}: {answer}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn websockets_open_from_the_own_and_listed_origins_only() {
    let app = app().await;
    let own = app.base.clone();
    for origin in [own.as_str(), ALLOWED] {
        let bearer = format!("Bearer {}", crate::common::test_key().key);
        let headers = [("origin", origin), ("authorization", bearer.as_str())];
        let mut client = WsClient::connect_with_headers(&app.ws_url(), &headers)
            .await
            .unwrap_or_else(|error| panic!("origin {origin} refused: {error}"));
        client.subscribe_all(None).await;
        client.close().await;
    }
    for origin in ["http://evil.example", "http://app.example:8443", "null"] {
        match WsClient::connect_with_headers(&app.ws_url(), &[("origin", origin)]).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "origin {origin}");
                let problem: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("problem body");
                assert_eq!(problem["code"], "origin_not_allowed");
            }
            Err(error) => panic!("origin {origin}: {error}"),
            Ok(_) => panic!("a WebSocket opened from {origin}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_preflights_and_requests_of_listed_origins_only() {
    let app = app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/commands"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight(ALLOWED).await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), ALLOWED);
    assert!(header(&allowed, "access-control-allow-methods").contains("POST"));
    let allow_headers = header(&allowed, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-none-match",
        "last-event-id",
    ] {
        assert!(
            allow_headers.contains(name),
            "{name} not in {allow_headers}"
        );
    }

    let other = preflight("http://evil.example").await.expect("preflight");
    assert_eq!(other.status(), 403);
    assert_eq!(header(&other, "access-control-allow-origin"), "");
    assert_eq!(header(&other, "access-control-allow-headers"), "");

    let listed = app
        .http
        .get(app.url("/v1/types"))
        .header("origin", ALLOWED)
        .send()
        .await
        .expect("request");
    assert_eq!(listed.status(), 200);
    assert_eq!(header(&listed, "access-control-allow-origin"), ALLOWED);
    assert!(header(&listed, "access-control-expose-headers").contains("etag"));
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_security_headers_and_the_web_ui_its_policy() {
    let app = app().await;
    let page = app.http.get(app.url("/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let policy = header(&page, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} not in {policy:?}");
    }
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    for path in ["/", "/app.js", "/v1/types", "/healthz"] {
        let response = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(
            header(&response, "referrer-policy"),
            "no-referrer",
            "{path}"
        );
        assert!(!header(&response, "x-request-id").is_empty(), "{path}");
    }
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "support-ticket-42")
        .send()
        .await
        .expect("request");
    assert_eq!(header(&echoed, "x-request-id"), "support-ticket-42");
    app.stop().await;
}

#[tokio::test]
async fn a_503_names_its_request_id_and_nothing_of_the_database() {
    let env = Env::new();
    let link = PgLink::open().await;
    let database_url = link.url(&env);
    let app = TestApp::start_with(env, cmdbus::Role::All, cmdbus::builtin_registry(), |c| {
        c.database_url = database_url;
    })
    .await;
    let id = app
        .submit_ok(serde_json::json!({"type": "demo.noop"}))
        .await;
    link.cut();
    let response = app
        .http
        .get(app.url(&format!("/v1/commands/{id}")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let request_id = header(&response, "x-request-id").to_owned();
    let text = response.text().await.expect("body");
    let problem: Value = serde_json::from_str(&text).expect("problem");
    assert_eq!(problem["code"], "unavailable");
    assert_eq!(problem["request_id"], request_id.as_str(), "{text}");
    for leak in ["sql", "postgres", "connection", "pool", "io error"] {
        assert!(
            !text.to_ascii_lowercase().contains(leak),
            "{leak} in {text}"
        );
    }
    link.restore();
    app.stop().await;
}

/// No cache may keep a `/v1` answer: a tenant's commands, a refusal, and above all the answer
/// that shows a new key's secret once.
#[tokio::test]
async fn every_v1_answer_is_marked_no_store() {
    let app = app().await;
    let id = app
        .submit_ok(serde_json::json!({"type": "demo.echo"}))
        .await;
    let created = app
        .http
        .post(app.url("/v1/keys"))
        .json(&serde_json::json!({"name": "shown-once", "scopes": ["read"]}))
        .send()
        .await
        .expect("create key");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let mut answers = vec![created];
    for path in [
        format!("/v1/commands/{id}"),
        "/v1/commands".to_owned(),
        "/v1/keys".to_owned(),
        "/v1/whoami".to_owned(),
        format!("/v1/commands/{}", uuid::Uuid::now_v7()),
    ] {
        answers.push(app.http.get(app.url(&path)).send().await.expect("get"));
    }
    answers.push(
        reqwest::Client::new()
            .get(app.url("/v1/commands"))
            .send()
            .await
            .expect("anonymous"),
    );
    for response in &answers {
        assert_eq!(
            header(response, "cache-control"),
            "no-store",
            "{} {}",
            response.status(),
            response.url()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn health_probes_answer_whatever_the_origin() {
    let app = app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .http
            .get(app.url(path))
            .header("origin", "http://evil.example")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path} from a foreign origin");
        // Answered, but not shared: the foreign page is not told it may read the answer.
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            "",
            "{path}"
        );
    }
    // The API itself is still closed to that origin.
    let response = app
        .http
        .get(app.url("/v1/types"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    app.stop().await;
}
