//! Tenants, keys, scopes and browser tokens, tried from outside: nothing crosses a tenant or a
//! token's reach, each route refuses a credential without its scope, and revoking a key stops
//! it in every running process.

mod common;

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

#[tokio::test]
async fn tenants_never_see_each_others_commands() {
    let app = TestApp::start().await;
    let acme = http_client_with(&key(&app, "acme", &["submit", "read", "operate"]).await);
    let globex_key = key(&app, "globex", &["submit", "read", "operate"]).await;
    let globex = http_client_with(&globex_key);

    // Globex listens to everything of its own, resuming from before anything happened.
    let (_, page) = call(&globex, Method::GET, app.url("/v1/commands"), None).await;
    let since = page["since"].as_str().expect("since").to_owned();
    let mut globex_ws = WsClient::connect_with(&app.ws_url(), Some(&globex_key)).await;
    globex_ws.subscribe_all(None).await;

    let theirs = submit(
        &app,
        &acme,
        json!({"type": "demo.fail", "payload": {"permanent": true}}),
    )
    .await;
    let ours = submit(&app, &globex, json!({"type": "demo.echo", "payload": 1})).await;
    for (http, id, status) in [(&acme, theirs, "fail"), (&globex, ours, "success")] {
        app.wait_until_as(http, id, T, |view| view["status"] == status)
            .await
            .expect("finished");
    }

    // By id, with an id copied from the other tenant: 404, never 403.
    for (method, path) in [
        (Method::GET, format!("/v1/commands/{theirs}")),
        (Method::GET, format!("/v1/commands/{theirs}?wait=1")),
        (Method::POST, format!("/v1/commands/{theirs}/retry")),
        (Method::POST, format!("/v1/commands/{theirs}/cancel")),
    ] {
        let (status, problem) = call(&globex, method.clone(), app.url(&path), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "not_found");
    }
    // Lists and bulk replays see only their own.
    let (_, page) = call(
        &globex,
        Method::GET,
        app.url("/v1/commands?limit=500"),
        None,
    )
    .await;
    assert_eq!(ids_of(&page), [ours]);
    let (_, count) = call(
        &globex,
        Method::POST,
        app.url("/v1/commands/retry"),
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(count["matched"], 0, "{count}");
    // The same idempotency key in two tenants makes two commands.
    let mut ids = Vec::new();
    for http in [&acme, &globex] {
        let response = http
            .post(app.url("/v1/commands"))
            .header("idempotency-key", "shared")
            .json(&json!({"type": "demo.echo"}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(id_of(&response.json().await.expect("view")));
    }
    assert_ne!(ids[0], ids[1]);

    // The WebSocket: live, by id and resumed, nothing of acme's reaches globex.
    let live = globex_ws
        .collect_until(T, |view| {
            view["id"] == ids[1].to_string() && view["status"] == "success"
        })
        .await
        .expect("own changes pushed");
    assert!(
        live.iter()
            .all(|view| view["id"] != theirs.to_string() && view["id"] != ids[0].to_string())
    );
    let mut by_id = WsClient::connect_with(&app.ws_url(), Some(&globex_key)).await;
    by_id
        .send(json!({"op": "subscribe", "ids": [theirs], "since": since}))
        .await;
    let reply = by_id.next_json(T).await.expect("reply");
    assert_eq!(
        reply["op"], "subscribed",
        "another tenant's id replayed: {reply}"
    );
    let mut resumed = WsClient::connect_with(&app.ws_url(), Some(&globex_key)).await;
    let replayed = resumed.subscribe_all(Some(&since)).await;
    let replayed: Vec<Uuid> = replayed.iter().map(id_of).collect();
    assert!(
        replayed.contains(&ours) && replayed.contains(&ids[1]),
        "{replayed:?}"
    );
    assert!(
        !replayed.contains(&theirs) && !replayed.contains(&ids[0]),
        "{replayed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn each_route_refuses_a_credential_without_its_scope() {
    let app = TestApp::start().await;
    let id = app.submit_ok(json!({"type": "demo.echo"})).await;
    let some_key = Uuid::now_v7();
    let routes: [(Method, String, Option<Value>, &str); 10] = [
        (
            Method::POST,
            "/v1/commands".into(),
            Some(json!({"type": "demo.echo"})),
            "submit",
        ),
        (Method::GET, format!("/v1/commands/{id}"), None, "read"),
        (Method::GET, "/v1/commands".into(), None, "read"),
        (
            Method::POST,
            format!("/v1/commands/{id}/cancel"),
            None,
            "operate",
        ),
        (
            Method::POST,
            format!("/v1/commands/{id}/retry"),
            None,
            "operate",
        ),
        (
            Method::POST,
            "/v1/commands/retry".into(),
            Some(json!({"dry_run": true})),
            "operate",
        ),
        (
            Method::POST,
            "/v1/keys".into(),
            Some(json!({"name": "n", "scopes": ["read"]})),
            "admin",
        ),
        (Method::GET, "/v1/keys".into(), None, "admin"),
        (
            Method::DELETE,
            format!("/v1/keys/{some_key}"),
            None,
            "admin",
        ),
        (
            Method::POST,
            "/v1/tokens".into(),
            Some(json!({"sub": "u1"})),
            "read",
        ),
    ];
    let anonymous = reqwest::Client::new();
    let bogus =
        http_client_with("cmdbus_0000000000000000000000000000000000000000000000000000000000000000");
    let garbage = http_client_with("not-a-key");
    for scope in ["submit", "read", "operate", "admin"] {
        let others: Vec<&str> = ["submit", "read", "operate", "admin"]
            .into_iter()
            .filter(|other| *other != scope)
            .collect();
        let without = http_client_with(&key(&app, "default", &others).await);
        for (method, path, body, needs) in &routes {
            if *needs != scope {
                continue;
            }
            let (status, problem) =
                call(&without, method.clone(), app.url(path), body.clone()).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} without {scope}: {problem}"
            );
            assert_eq!(problem["code"], "forbidden");
        }
    }
    for client in [&anonymous, &bogus, &garbage] {
        for (method, path, body, _) in &routes {
            let response = client
                .request(method.clone(), app.url(path))
                .json(body)
                .send()
                .await
                .expect("request");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            assert!(response.headers().contains_key("www-authenticate"));
        }
    }
    // The WebSocket: no credential in the header is refused before the upgrade when one is
    // sent and wrong; a socket that never authenticates is closed with 4401.
    let upgrade = tokio_tungstenite::connect_async({
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = app.ws_url().into_client_request().expect("url");
        request
            .headers_mut()
            .insert("authorization", "Bearer nonsense".parse().expect("header"));
        request
    })
    .await;
    assert!(upgrade.is_err(), "upgrade with a bad key accepted");
    let mut silent = WsClient::connect_with(&app.ws_url(), None).await;
    silent.send(json!({"op": "subscribe", "all": true})).await;
    let (code, reason, _) = silent.closed(T).await.expect("closed");
    assert_eq!(code, 4401, "{reason}");
    let write_only = key(&app, "default", &["submit"]).await;
    let mut no_read = WsClient::connect_with(&app.ws_url(), None).await;
    no_read
        .send(json!({"op": "auth", "token": write_only}))
        .await;
    let (code, reason, _) = no_read.closed(T).await.expect("closed");
    assert_eq!(code, 4403, "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_process_within_a_second() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let api = Proc::spawn(&env, "api", &[]);
    let notifier = Proc::spawn(&env, "notifier", &[]);
    common::wait_ready(&reqwest::Client::new(), &api.base).await;
    common::wait_ready(&reqwest::Client::new(), &notifier.base).await;
    let admin = http_client_with(&key(&app, "default", &["admin"]).await);
    let (status, created) = call(
        &admin,
        Method::POST,
        app.url("/v1/keys"),
        Some(json!({"name": "to revoke", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let doomed = created["key"].as_str().expect("key shown once").to_owned();
    let doomed_id = created["id"].as_str().expect("id").to_owned();
    let (_, listed) = call(&admin, Method::GET, app.url("/v1/keys"), None).await;
    assert!(
        !listed.to_string().contains(&doomed),
        "a listing shows a secret"
    );

    let reader = http_client_with(&doomed);
    let bases = [
        app.base.clone(),
        api.base.clone(),
        notifier.base.replace("http", "ws"),
    ];
    for base in &bases[..2] {
        let (status, _) = call(&reader, Method::GET, format!("{base}/v1/commands"), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut socket = WsClient::connect_with(&format!("{}/v1/ws", bases[2]), Some(&doomed)).await;
    socket.subscribe_all(None).await;

    let status = status_of(
        &admin,
        Method::DELETE,
        app.url(&format!("/v1/keys/{doomed_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = Instant::now();
    for base in &bases[..2] {
        loop {
            let (status, _) = call(&reader, Method::GET, format!("{base}/v1/commands"), None).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "{base} still honours the key"
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling the other process
        }
    }
    let (code, reason, _) = socket
        .closed(Duration::from_secs(3))
        .await
        .expect("socket closed");
    assert_eq!((code, reason.as_str()), (4401, "API key revoked"));
    let status = status_of(
        &admin,
        Method::DELETE,
        app.url(&format!("/v1/keys/{doomed_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked twice");
    drop((api, notifier));
    app.stop().await;
}

#[tokio::test]
async fn a_browser_token_sees_its_subject_or_its_ids_and_nothing_else() {
    let app = app_with_token_secret().await;
    let backend_key = key(&app, "default", &["submit", "read"]).await;
    let backend = http_client_with(&backend_key);
    let mine = echo_for(&app, &backend, "u1").await;
    let theirs = echo_for(&app, &backend, "u2").await;
    let nobodys = submit(&app, &backend, json!({"type": "demo.echo"})).await;
    let mint = |body: Value| {
        let backend = backend.clone();
        let url = app.url("/v1/tokens");
        async move {
            let (status, minted) = call(&backend, Method::POST, url, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{minted}");
            minted["token"].as_str().expect("token").to_owned()
        }
    };

    let u1 = http_client_with(&mint(json!({"sub": "u1"})).await);
    let status = status_of(&u1, Method::GET, app.url(&format!("/v1/commands/{mine}"))).await;
    assert_eq!(status, StatusCode::OK);
    for other in [theirs, nobodys] {
        let status = status_of(&u1, Method::GET, app.url(&format!("/v1/commands/{other}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, page) = call(&u1, Method::GET, app.url("/v1/commands"), None).await;
    assert_eq!(ids_of(&page), [mine]);
    // Read-only unless stated: no submit, cancel or key management.
    let (status, _) = call(
        &u1,
        Method::POST,
        app.url("/v1/commands"),
        Some(json!({"type": "demo.echo"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = status_of(
        &u1,
        Method::POST,
        app.url(&format!("/v1/commands/{mine}/cancel")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token that may submit submits for its own subject only.
    let u1_submits =
        http_client_with(&mint(json!({"sub": "u1", "scopes": ["read", "submit"]})).await);
    let (status, view) = call(
        &u1_submits,
        Method::POST,
        app.url("/v1/commands"),
        Some(json!({"type": "demo.echo"})),
    )
    .await;
    assert_eq!(
        (status, &view["subject"]),
        (StatusCode::ACCEPTED, &json!("u1"))
    );
    let (status, _) = call(
        &u1_submits,
        Method::POST,
        app.url("/v1/commands"),
        Some(json!({"type": "demo.echo", "subject": "u2"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A key cannot grant what it lacks.
    let (status, _) = call(
        &backend,
        Method::POST,
        app.url("/v1/tokens"),
        Some(json!({"sub": "u1", "scopes": ["operate"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token that may operate operates on its own subject's commands only.
    let operator = http_client_with(&key(&app, "default", &["read", "operate"]).await);
    let (status, minted) = call(
        &operator,
        Method::POST,
        app.url("/v1/tokens"),
        Some(json!({"sub": "u1", "scopes": ["read", "operate"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let u1_operates = http_client_with(minted["token"].as_str().expect("token"));
    // Commands in states that allow the operation: only the reach refuses them.
    let running = submit(
        &app,
        &backend,
        json!({"type": "demo.sleep", "payload": {"ms": 60_000}, "subject": "u2"}),
    )
    .await;
    let failed = submit(
        &app,
        &backend,
        json!({"type": "demo.fail", "payload": {"permanent": true}, "subject": "u2"}),
    )
    .await;
    app.wait_until_as(&backend, failed, T, |view| view["status"] == "fail")
        .await
        .expect("failed");
    for (verb, id) in [("cancel", running), ("retry", failed)] {
        let status = status_of(
            &u1_operates,
            Method::POST,
            app.url(&format!("/v1/commands/{id}/{verb}")),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{verb} of another subject's command"
        );
    }
    let untouched: i64 = sqlx::query_scalar(
        "select count(*) from commands
          where (id = $1 and not cancel_requested and status <> 'cancelled')
             or (id = $2 and status = 'fail' and generation = 0)",
    )
    .bind(running)
    .bind(failed)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(untouched, 2, "another subject's commands were changed");
    let status = status_of(
        &u1_operates,
        Method::POST,
        app.url(&format!("/v1/commands/{mine}/retry")),
    )
    .await;
    assert_ne!(
        status,
        StatusCode::NOT_FOUND,
        "retry of its own subject's command"
    );

    // Named ids.
    let only_theirs = http_client_with(&mint(json!({"ids": [theirs]})).await);
    let status = status_of(
        &only_theirs,
        Method::GET,
        app.url(&format!("/v1/commands/{theirs}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let status = status_of(
        &only_theirs,
        Method::GET,
        app.url(&format!("/v1/commands/{mine}")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Forged, expired, unsigned, other-secret tokens; offline minting with the shared secret.
    let now = chrono::Utc::now().timestamp();
    let offline = |exp: i64, secret: &str| offline_token(exp - now, secret);
    let good = offline(now + 60, SECRET);
    let status = status_of(
        &http_client_with(&good),
        Method::GET,
        app.url(&format!("/v1/commands/{mine}")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an offline token of the shared secret"
    );
    // One character of the signature changed: its first, which carries six bits of the MAC (the
    // last one's low bits are padding a decoder may ignore).
    let at = good.rfind('.').expect("signature") + 1;
    let first = &good[at..=at];
    let forged = format!(
        "{}{}{}",
        &good[..at],
        if first == "A" { "B" } else { "A" },
        &good[at + 1..]
    );
    for (token, why) in [
        (forged, "bad token signature"),
        (offline(now - 1, SECRET), "token expired"),
        (
            offline(now + 60, "another-secret-another-secret-another"),
            "bad token signature",
        ),
        (
            offline(now + 10 * 86_400, SECRET),
            "token lives longer than this server allows",
        ),
    ] {
        let (status, problem) = call(
            &http_client_with(&token),
            Method::GET,
            app.url(&format!("/v1/commands/{mine}")),
            None,
        )
        .await;
        assert_eq!(
            (status, problem["detail"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(why))
        );
    }

    // On a WebSocket, a token authenticates with its first message and sees only its subject.
    let mut ws = WsClient::connect_with(&app.ws_url(), None).await;
    ws.send(json!({"op": "auth", "token": good})).await;
    let hello = ws.next_json(T).await.expect("authenticated");
    assert_eq!(hello["op"], "authenticated", "{hello}");
    assert_eq!(hello["tenant"], "default");
    ws.subscribe_all(None).await;
    let other = echo_for(&app, &backend, "u2").await;
    let own = echo_for(&app, &backend, "u1").await;
    let seen = ws
        .collect_until(T, |view| {
            view["id"] == own.to_string() && view["status"] == "success"
        })
        .await
        .expect("own subject pushed");
    assert!(
        seen.iter()
            .all(|view| view["subject"] == "u1" && view["id"] != other.to_string())
    );

    // A key-minted token dies with its key.
    let backend_id = cmdbus_store::find_key(&app.pool, &cmdbus_auth::hash_key(&backend_key))
        .await
        .expect("lookup")
        .expect("key")
        .id;
    cmdbus_store::revoke_key(&app.pool, None, backend_id)
        .await
        .expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = status_of(&u1, Method::GET, app.url(&format!("/v1/commands/{mine}"))).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "a token outlived its key");
        tokio::time::sleep(Duration::from_millis(50)).await; // polling the key cache's expiry
    }
    app.stop().await;
}

#[tokio::test]
async fn a_socket_is_told_to_renew_its_token_and_keeps_its_place() {
    let app = app_with_token_secret().await;
    let token = |ttl: i64| offline_token(ttl, SECRET);
    let mut ws = WsClient::connect_with(&app.ws_url(), None).await;
    ws.send(json!({"op": "auth", "token": token(3)})).await;
    assert_eq!(ws.next_json(T).await.expect("hello")["op"], "authenticated");
    ws.subscribe_all(None).await;
    let renew = ws.next_json(T).await.expect("renew");
    assert_eq!(renew["op"], "renew", "{renew}");
    ws.send(json!({"op": "auth", "token": token(60)})).await;
    assert_eq!(
        ws.next_json(T).await.expect("renewed")["op"],
        "authenticated"
    );
    // Past the first token's expiry, the same subscription still delivers.
    tokio::time::sleep(Duration::from_secs(4)).await; // outliving the first token on purpose
    let id = app
        .submit_ok(json!({"type": "demo.echo", "subject": "u1"}))
        .await;
    ws.collect_until(T, |view| {
        view["id"] == id.to_string() && view["status"] == "success"
    })
    .await
    .expect("still subscribed after renewal");

    // A token that is not renewed ends the socket with 4401 once it expires.
    let mut lapsing = WsClient::connect_with(&app.ws_url(), None).await;
    lapsing.send(json!({"op": "auth", "token": token(2)})).await;
    let (code, reason, before) = lapsing.closed(T).await.expect("closed");
    assert_eq!((code, reason.as_str()), (4401, "token expired"));
    assert!(
        before.iter().any(|message| message["op"] == "renew"),
        "{before:?}"
    );
    app.stop().await;
}
