//! Submitting a command, reading it back, long-polling it, idempotency and bad input.

use super::*;

#[tokio::test]
async fn submit_answers_202_with_view_location_and_etag_then_succeeds() {
    let app = TestApp::start().await;
    let response = app
        .http
        .post(app.url("/v1/commands"))
        .json(&json!({"type": "demo.echo", "payload": {"n": 7}}))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(response.headers().contains_key("etag"));
    let view: Value = response.json().await.expect("json");
    let id = id_of(&view);
    assert_eq!(location, format!("/v1/commands/{id}"));
    assert_eq!(view["type"], "demo.echo");
    assert!(
        ["new", "queue", "running", "success"].contains(&view["status"].as_str().unwrap_or(""))
    );
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["result"], json!({"n": 7}));
    assert_eq!(
        done["payload"],
        json!({"n": 7}),
        "the detail carries the payload"
    );
    assert_eq!(done["attempt"], 1);
    assert!(done["queued_at"].is_string() && done["finished_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn etag_answers_304_and_long_poll_returns_on_change() {
    let app = TestApp::start().await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 400, "steps": 2}}))
        .await;
    let done = app.wait_status(id, "success", T).await;
    let etag = format!("\"{}\"", done["version"]);
    let unchanged = app
        .http
        .get(app.url(&format!("/v1/commands/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    // `*` matches any current version of a command that exists (RFC 9110 §13.1.2), at once
    // even with a wait: no change could make it stop matching.
    let any = |id: uuid::Uuid| {
        app.http
            .get(app.url(&format!("/v1/commands/{id}?wait=30")))
            .header("if-none-match", "*")
            .send()
    };
    let started = tokio::time::Instant::now();
    let unchanged = any(id).await.expect("get");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert!(started.elapsed() < Duration::from_secs(10));
    let missing = any(uuid::Uuid::now_v7()).await.expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A list of tags matches when one of them does.
    let unchanged = app
        .http
        .get(app.url(&format!("/v1/commands/{id}")))
        .header("if-none-match", format!("\"0\", {etag}"))
        .send()
        .await
        .expect("get");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    // A long-poll on a command that changes returns the change, not the old version.
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 600, "steps": 1}}))
        .await;
    let first: Value = app
        .http
        .get(app.url(&format!("/v1/commands/{id}")))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let changed = app
        .http
        .get(app.url(&format!("/v1/commands/{id}?wait=20")))
        .header("if-none-match", format!("\"{}\"", first["version"]))
        .send()
        .await
        .expect("long poll");
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.expect("json");
    assert!(changed["version"].as_i64() > first["version"].as_i64());
    app.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_of_an_idempotency_key_make_exactly_one_command() {
    let app = TestApp::start().await;
    let requests = (0..20).map(|_| {
        app.http
            .post(app.url("/v1/commands"))
            .header("idempotency-key", "order-42")
            .json(&json!({"type": "demo.echo", "payload": {"order": 42}}))
            .send()
    });
    let responses = join_all(requests).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for response in responses {
        let response = response.expect("submit");
        match response.status() {
            StatusCode::ACCEPTED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        ids.push(id_of(&response.json::<Value>().await.expect("json")));
    }
    assert_eq!(created, 1, "exactly one request creates the command");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every answer names the same command"
    );
    assert_eq!(app.count("select count(*) from commands").await, 1);
    app.wait_status(ids[0], "success", T).await;

    // The same key for a different command is refused, not silently answered: 422, as the
    // IETF Idempotency-Key draft says.
    let (status, problem) = app.submit(json!({"type": "demo.noop"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{problem}");
    let reused = app
        .http
        .post(app.url("/v1/commands"))
        .header("idempotency-key", "order-42")
        .json(&json!({"type": "demo.echo", "payload": {"order": 43}}))
        .send()
        .await
        .expect("submit");
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = reused.json().await.expect("problem");
    assert_eq!(problem["code"], "idempotency_key_reused", "{problem}");
    assert_eq!(app.count("select count(*) from commands").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_submits_is_recorded_once_each_and_a_bad_payload_fails_alone() {
    // Submits that arrive together share transactions (group commit); a payload the database
    // cannot read back must fail its own request only, and nothing of it may be written.
    let app = TestApp::start().await;
    let good = (0..150).map(|n| {
        app.http
            .post(app.url("/v1/commands"))
            .json(&json!({"type": "demo.echo", "payload": {"n": n}}))
            .send()
    });
    let bad = app
        .http
        .post(app.url("/v1/commands"))
        .header("content-type", "application/json")
        .body(r#"{"type": "demo.echo", "payload": {"huge": 1.7976931348623157e308}}"#)
        .send();
    let (good, bad) = tokio::join!(join_all(good), bad);
    let bad = bad.expect("submit");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = bad.json().await.expect("problem");
    assert_eq!(problem["code"], "invalid_field", "{problem}");
    let mut ids = Vec::new();
    for response in good {
        let response = response.expect("submit");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let view: Value = response.json().await.expect("view");
        ids.push(id_of(&view));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 150, "one command per request");
    assert_eq!(app.count("select count(*) from commands").await, 150);
    for id in &ids {
        app.wait_status(*id, "success", T).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_writes_nothing() {
    let app = TestApp::start_tweaked(|config| {
        config.max_body_bytes = 1024;
    })
    .await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(app.url("/v1/commands"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = "application/json";
    let big = serde_json::to_vec(&json!({"type": "demo.echo", "payload": "x".repeat(4096)}))
        .expect("json");
    let cases: Vec<(&str, Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            "malformed",
            b"{\"type\": ".to_vec(),
            json,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not json",
            br#"{"type":"demo.echo"}"#.to_vec(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "too large",
            big,
            json,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "unknown type",
            br#"{"type":"nope.nope"}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_type",
        ),
        (
            "missing type",
            br#"{"payload":{}}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "unknown field",
            br#"{"type":"demo.echo","colour":"red"}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "priority",
            br#"{"type":"demo.echo","priority":10}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "attempts",
            br#"{"type":"demo.echo","max_attempts":0}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "empty key",
            br#"{"type":"demo.echo","ordering_key":""}"#.to_vec(),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ];
    for (name, body, content_type, status, code) in cases {
        let response = post(body, content_type).await.expect("request");
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let problem: Value = response.json().await.expect("problem body");
        assert_eq!(problem["code"], code, "{name}: {problem}");
        assert_eq!(problem["status"], status.as_u16(), "{name}");
    }
    let get = |path: String| app.http.get(app.url(&path)).send();
    let response = get("/v1/commands/not-a-uuid".to_owned())
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let unknown = uuid::Uuid::now_v7();
    let response = get(format!("/v1/commands/{unknown}")).await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = get("/v1/commands?status=done".to_owned())
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.count("select count(*) from commands").await,
        0,
        "nothing written"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_content_encoded_body_gets_415_and_writes_nothing() {
    let app = TestApp::start().await;
    let post = |coding: &'static str| {
        app.http
            .post(app.url("/v1/commands"))
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(r#"{"type":"demo.echo"}"#)
            .send()
    };
    // The body is plain JSON: a server that ignored the header would take it as sent.
    for coding in ["gzip", "br", "identity, gzip"] {
        let response = post(coding).await.expect("submit");
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{coding}"
        );
        assert_eq!(
            response.headers()["accept-encoding"],
            "identity",
            "{coding}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{coding}"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], "unsupported_content_encoding", "{problem}");
    }
    assert_eq!(app.count("select count(*) from commands").await, 0);
    let response = post("identity").await.expect("submit");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "identity is no coding"
    );
    app.stop().await;
}
