//! Focused tests of what Schemathesis found (or would find) at the edges of the description:
//! each answer below was once a server error, a plain-text answer, an undocumented status, a
//! valid request refused or an invalid one accepted.

use crate::common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The status and `code` of a problem answer (asserting that it is one).
async fn problem(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        content_type.as_ref().and_then(|value| value.to_str().ok()),
        Some("application/problem+json"),
        "{status}: {body}"
    );
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.expect("get")
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("post")
}

fn bad(code: &str) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, code.to_owned())
}

fn unprocessable(code: &str) -> (StatusCode, String) {
    (StatusCode::UNPROCESSABLE_ENTITY, code.to_owned())
}

#[tokio::test]
async fn a_query_or_path_the_api_cannot_read_gets_a_problem_not_plain_text() {
    let app = TestApp::start().await;
    let id = app.submit_ok(json!({"type": "demo.noop"})).await;
    for path in [
        format!("/v1/commands/{id}?wait=-1"),
        format!("/v1/commands/{id}?wait=x"),
        // Past the longest wait: refused, not quietly shortened.
        format!("/v1/commands/{id}?wait=61"),
        "/v1/commands?limit=x".to_owned(),
        "/v1/commands?limit=0".to_owned(),
        "/v1/commands?status=done".to_owned(),
    ] {
        assert_eq!(
            problem(get(&app, &path).await).await,
            bad("invalid_query"),
            "{path}"
        );
    }
    // A path segment that is not even UTF-8.
    let response = get(&app, "/v1/commands/%FF").await;
    assert_eq!(problem(response).await, bad("invalid_id"));
    app.stop().await;
}

#[tokio::test]
async fn ids_and_cursors_are_uuids_in_the_hyphenated_form_only() {
    let app = TestApp::start().await;
    let id = app.submit_ok(json!({"type": "demo.noop"})).await;
    let simple = id.simple().to_string();
    let response = get(&app, &format!("/v1/commands/{simple}")).await;
    assert_eq!(problem(response).await, bad("invalid_id"));
    let response = get(&app, &format!("/v1/commands/{{{id}}}")).await;
    assert_eq!(problem(response).await, bad("invalid_id"));
    let response = get(&app, &format!("/v1/commands?cursor={simple}")).await;
    assert_eq!(problem(response).await, bad("invalid_query"));
    let response = get(&app, "/v1/commands?cursor=").await;
    assert_eq!(problem(response).await, bad("invalid_query"));
    let response = post(&app, "/v1/tokens", json!({"ids": [simple]})).await;
    assert_eq!(problem(response).await, unprocessable("invalid_body"));
    let response = post(&app, "/v1/tokens", json!({"ids": [id]})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_nul_or_control_character_in_a_name_or_filter_is_refused_as_such() {
    let app = TestApp::start().await;
    for path in [
        "/v1/commands?type=%00",
        "/v1/commands?type=demo.echo%0A",
        "/v1/commands?subject=u%00",
    ] {
        assert_eq!(
            problem(get(&app, path).await).await,
            bad("invalid_query"),
            "{path}"
        );
    }
    for body in [
        json!({"error_code": "a\u{0}"}),
        json!({"type": "\u{0}"}),
        json!({"error_code": ""}),
    ] {
        let response = post(&app, "/v1/commands/retry", body.clone()).await;
        assert_eq!(
            problem(response).await,
            unprocessable("invalid_field"),
            "{body}"
        );
    }
    for body in [
        json!({"type": "demo.echo", "ordering_key": "k\u{0}"}),
        json!({"type": "demo.echo", "subject": "\u{0}"}),
        json!({"type": "demo.echo", "payload": {"a\u{0}": 1}}),
        json!({"type": "demo.echo\u{0}"}),
    ] {
        let response = post(&app, "/v1/commands", body.clone()).await;
        assert_eq!(
            problem(response).await,
            unprocessable("invalid_field"),
            "{body}"
        );
    }
    let response = post(
        &app,
        "/v1/keys",
        json!({"name": "a\u{0}", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(problem(response).await, unprocessable("invalid_field"));
    assert_eq!(app.count("select count(*) from commands").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn names_are_measured_in_characters_as_max_length_says() {
    let app = TestApp::start().await;
    let long = "é".repeat(200);
    let (status, view) = app
        .submit(json!({"type": "demo.noop", "ordering_key": long, "subject": long}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let response = post(
        &app,
        "/v1/commands",
        json!({"type": "demo.noop", "ordering_key": "é".repeat(201)}),
    )
    .await;
    assert_eq!(problem(response).await, unprocessable("invalid_field"));
    let response = post(&app, "/v1/keys", json!({"name": long, "scopes": ["read"]})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn numbers_are_read_as_json_schema_reads_them() {
    let app = TestApp::start().await;
    // `integer` in JSON Schema is any number without a fraction.
    let (status, view) = app
        .submit(json!({"type": "demo.noop", "priority": 3.0, "max_attempts": 2.0}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(
        (view["priority"].clone(), view["max_attempts"].clone()),
        (json!(3), json!(2))
    );
    let response = post(
        &app,
        "/v1/commands",
        json!({"type": "demo.noop", "priority": 2.5}),
    )
    .await;
    assert_eq!(problem(response).await, unprocessable("invalid_body"));
    let response = post(&app, "/v1/tokens", json!({"sub": "u", "ttl_secs": 60.0})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // A payload number past ±1e308 does not read back exactly: refused, as the schema says.
    let response = app
        .http
        .post(app.url("/v1/commands"))
        .header("content-type", "application/json")
        .body(r#"{"type": "demo.echo", "payload": [1.5e308]}"#)
        .send()
        .await
        .expect("submit");
    assert_eq!(problem(response).await, unprocessable("invalid_field"));
    app.stop().await;
}

#[tokio::test]
async fn a_token_names_a_subject_or_ids_and_keys_name_scopes_exactly() {
    let app = TestApp::start().await;
    for scopes in [json!([" read"]), json!(["Read"]), json!(["everything"])] {
        let response = post(&app, "/v1/keys", json!({"name": "n", "scopes": scopes})).await;
        assert_eq!(
            problem(response).await,
            unprocessable("invalid_body"),
            "{scopes}"
        );
    }
    let response = post(&app, "/v1/keys", json!({"name": "n", "scopes": []})).await;
    assert_eq!(problem(response).await, unprocessable("invalid_field"));
    for body in [
        json!({}),
        json!({"sub": null, "ids": []}),
        json!({"ids": []}),
    ] {
        let response = post(&app, "/v1/tokens", body.clone()).await;
        assert_eq!(
            problem(response).await,
            unprocessable("invalid_field"),
            "{body}"
        );
    }
    let response = post(&app, "/v1/tokens", json!({"sub": "u", "scopes": ["admin"]})).await;
    assert_eq!(problem(response).await, unprocessable("invalid_field"));
    let response = post(
        &app,
        "/v1/tokens",
        json!({"sub": "u", "scopes": ["read", "submit"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_request_that_is_not_a_websocket_handshake_gets_a_problem() {
    let app = TestApp::start().await;
    let response = get(&app, "/v1/ws").await;
    assert_eq!(problem(response).await, bad("not_websocket"));
    let response = app
        .http
        .get(app.url("/v1/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "not sixteen bytes")
        .send()
        .await
        .expect("upgrade");
    assert_eq!(problem(response).await, bad("not_websocket"));
    app.stop().await;
}

#[tokio::test]
async fn the_description_states_what_this_deployment_accepts() {
    let app = TestApp::start().await;
    let doc: Value = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["type"]["enum"],
        json!([
            "demo.add",
            "demo.echo",
            "demo.fail",
            "demo.noop",
            "demo.sleep"
        ]),
        "a submit names a registered type"
    );
    let ttl = &schemas["TokenRequest"]["properties"]["ttl_secs"];
    assert_eq!(ttl["maximum"], json!(86_400), "{ttl}");
    app.stop().await;
}

/// W3C Trace Context asks a receiver to ignore a `traceparent` it cannot read and start a trace
/// of its own: so the description states the header's form without a `pattern`, and the submit
/// is taken, recording a context that reads (Schemathesis once sent `4c{`, which a `pattern`
/// made a schema-violating request accepted).
#[tokio::test]
async fn a_trace_header_that_does_not_read_is_ignored_not_refused() {
    let app = TestApp::start().await;
    let description: Value = get(&app, "/openapi.json").await.json().await.expect("json");
    let parameters = description["paths"]["/v1/commands"]["post"]["parameters"]
        .as_array()
        .expect("submit's parameters");
    let header = parameters
        .iter()
        .find(|parameter| parameter["name"] == "traceparent")
        .expect("the traceparent header is described");
    assert_eq!(header["schema"].get("pattern"), None, "{header}");

    for garbage in [
        "4c{",
        "00-zz-zz-01",
        "00-00000000000000000000000000000000-0000000000000000-01",
    ] {
        let response = app
            .http
            .post(app.url("/v1/commands"))
            .header("traceparent", garbage)
            .json(&json!({"type": "demo.noop"}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{garbage}");
        let view: Value = response.json().await.expect("view");
        let id = uuid::Uuid::parse_str(view["id"].as_str().expect("id")).expect("uuid");
        let recorded: Option<String> =
            sqlx::query_scalar("select traceparent from commands where id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .expect("the command's row");
        let recorded = recorded.expect("a trace context of its own");
        assert_ne!(recorded, garbage);
        assert!(
            cmdbus_domain::trace::TraceParent::parse(&recorded).is_some(),
            "{garbage} left {recorded}"
        );
    }
    app.stop().await;
}
