//! Tenants, keys, scopes and browser tokens, tried from outside: nothing crosses a tenant or a
//! token's reach, each route refuses a credential without its scope, and revoking a key stops
//! it in every running process.
//! `tenants`: tenants, scopes and revocation; `tokens`: browser tokens; `access`: per-caller
//! limits; `fairness`: fair shares per subject and per client address; `development`: the development start and `cmdbus keys`; `transport`, `transport_ws`, `transport_policy`: the
//! server's bounds against slow or greedy clients and what browsers may do.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod development;
mod fairness;
mod tenants;
mod tokens;
mod transport;
mod transport_policy;
mod transport_ws;

use cmdbus::Role;
use cmdbus_auth::{Claims, Scopes};
use common::{Env, TestApp, WsClient, http_client_with, id_of, process::Proc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

const T: Duration = Duration::from_secs(20);

/// A key of `tenant` with `scopes`, recorded in the app's database.
async fn key(app: &TestApp, tenant: &str, scopes: &[&str]) -> String {
    let scopes = Scopes::parse(scopes).expect("known scopes");
    let (key, _) = cmdbus_auth::issue_key(&app.pool, tenant, "test", scopes, false)
        .await
        .expect("key recorded");
    key
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Submits with `http` and returns the new command's id.
async fn submit(app: &TestApp, http: &reqwest::Client, body: Value) -> Uuid {
    let (status, view) = call(http, Method::POST, app.url("/v1/commands"), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    id_of(&view)
}

/// The token secret of `app_with_token_secret`, as a backend minting offline holds it.
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

/// An app whose browser tokens are signed with `SECRET`.
async fn app_with_token_secret() -> TestApp {
    TestApp::start_tweaked(|config| {
        config.auth.token_secret = Some(SECRET.to_owned());
    })
    .await
}

/// A read-only token for subject `u1` of tenant `default`, expiring `ttl` seconds from now,
/// signed offline with `secret` (as an application's backend would, with any JWT library).
fn offline_token(ttl: i64, secret: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    cmdbus_auth::sign(
        &Claims {
            tenant: "default".to_owned(),
            sub: Some("u1".to_owned()),
            ids: Vec::new(),
            scopes: vec!["read".to_owned()],
            exp: now + ttl,
            iat: Some(now),
            nbf: None,
            iss: None,
            aud: None,
            key: None,
        },
        secret.as_bytes(),
    )
}

/// The status of a request without a body.
async fn status_of(http: &reqwest::Client, method: Method, url: String) -> StatusCode {
    call(http, method, url, None).await.0
}

/// Submits a `demo.echo` for `subject` and returns its id.
async fn echo_for(app: &TestApp, http: &reqwest::Client, subject: &str) -> Uuid {
    submit(app, http, json!({"type": "demo.echo", "subject": subject})).await
}

fn ids_of(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}
