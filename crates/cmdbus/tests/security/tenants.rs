//! Nothing crosses a tenant, each route refuses a credential without its scope, and a revoked key
//! is refused by every process.

use super::*;

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
        (Method::GET, format!("/v1/commands/{theirs}/attempts")),
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
    let routes: [(Method, String, Option<Value>, &str); 20] = [
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
            Method::GET,
            format!("/v1/commands/{id}/attempts"),
            None,
            "read",
        ),
        // Hosts and process ids of the deployment: not for every reader.
        (Method::GET, "/v1/workers".into(), None, "admin"),
        (
            Method::DELETE,
            format!("/v1/keys/{some_key}"),
            None,
            "admin",
        ),
        (
            Method::POST,
            "/v1/commands/cancel".into(),
            Some(json!({"dry_run": true})),
            "operate",
        ),
        (Method::GET, "/v1/audit".into(), None, "operate"),
        // Types and queues are shared by every tenant: pausing needs `operate` and `admin`.
        (
            Method::POST,
            "/v1/types/demo.echo/pause".into(),
            None,
            "operate",
        ),
        (
            Method::POST,
            "/v1/types/demo.echo/pause".into(),
            None,
            "admin",
        ),
        (
            Method::POST,
            "/v1/types/demo.echo/resume".into(),
            None,
            "operate",
        ),
        (
            Method::POST,
            "/v1/types/demo.echo/resume".into(),
            None,
            "admin",
        ),
        (Method::GET, "/v1/queues".into(), None, "read"),
        (Method::GET, "/v1/queues".into(), None, "admin"),
        // Minting needs `read` itself, even for a token of scopes the key holds.
        (
            Method::POST,
            "/v1/tokens".into(),
            Some(json!({"sub": "u1", "scopes": ["submit"]})),
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

/// RFC 9110 §11.1: the authentication scheme is case-insensitive; another scheme is refused.
#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let app = TestApp::start().await;
    let credential = key(&app, "default", &["read"]).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = reqwest::Client::new()
            .get(app.url("/v1/whoami"))
            .header("authorization", format!("{scheme} {credential}"))
            .send()
            .await
            .expect("whoami");
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let response = reqwest::Client::new()
        .get(app.url("/v1/whoami"))
        .header("authorization", format!("Basic {credential}"))
        .send()
        .await
        .expect("whoami");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}
