//! Browser tokens: a token sees its subject or its ids and nothing else, and a socket is told to
//! renew its token and keeps its place.

use super::*;

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
    // Bulk actions and the audit trail reach the whole tenant: a subject's token gets none.
    let (status, problem) = call(
        &u1_operates,
        Method::POST,
        app.url("/v1/commands/cancel"),
        Some(json!({"ids": [running]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "bulk cancel by a token: {problem}"
    );
    let status = status_of(&u1_operates, Method::GET, app.url("/v1/audit")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the audit trail to a token");
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

/// Submits `body` with `Idempotency-Key: key`; the status and the view.
async fn submit_keyed(
    app: &TestApp,
    http: &reqwest::Client,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = http
        .post(app.url("/v1/commands"))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("submit");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_end_user_cannot_take_an_idempotency_key_the_backend_or_another_user_uses() {
    let app = app_with_token_secret().await;
    let backend = http_client_with(&key(&app, "default", &["submit", "read"]).await);
    let mint = |sub: &'static str| {
        let backend = backend.clone();
        let url = app.url("/v1/tokens");
        async move {
            let body = json!({"sub": sub, "scopes": ["read", "submit"]});
            let (status, minted) = call(&backend, Method::POST, url, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{minted}");
            http_client_with(minted["token"].as_str().expect("token"))
        }
    };
    let (u1, u2) = (mint("u1").await, mint("u2").await);
    // The end user guesses the key the backend will use for its order, and uses it first.
    let (status, squatted) = submit_keyed(
        &app,
        &u1,
        "order-1",
        json!({"type": "demo.echo", "payload": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{squatted}");

    // The backend's submit under that key is its own, even for the same subject.
    let (status, backends) = submit_keyed(
        &app,
        &backend,
        "order-1",
        json!({"type": "demo.echo", "payload": 2, "subject": "u1"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{backends}");
    assert_ne!(id_of(&backends), id_of(&squatted));
    // So is another end user's.
    let (status, others) = submit_keyed(
        &app,
        &u2,
        "order-1",
        json!({"type": "demo.echo", "payload": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{others}");
    assert_ne!(id_of(&others), id_of(&squatted));
    // And each key still names one command for whoever holds it.
    let (status, again) = submit_keyed(
        &app,
        &u1,
        "order-1",
        json!({"type": "demo.echo", "payload": 1}),
    )
    .await;
    assert_eq!((status, id_of(&again)), (StatusCode::OK, id_of(&squatted)));
    let (status, again) = submit_keyed(
        &app,
        &backend,
        "order-1",
        json!({"type": "demo.echo", "payload": 2, "subject": "u1"}),
    )
    .await;
    assert_eq!((status, id_of(&again)), (StatusCode::OK, id_of(&backends)));
    app.stop().await;
}
