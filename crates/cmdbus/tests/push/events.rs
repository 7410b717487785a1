//! Server-Sent Events `GET /v1/events` against the real app: a stream follows commands to their
//! end; `Last-Event-ID` resumes across a restart of the serving process missing nothing; an API
//! key in the query is refused; a token's stream is told to renew and ends at expiry; a stream
//! counts against the socket caps.

use crate::common::{
    TestApp, http_client_with, id_of,
    process::Proc,
    sse::{SseEvent, SseStream},
    test_key,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::HashMap, time::Duration};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// Opens `/v1/events?query` with `http`, sending `last_id` as `Last-Event-ID`.
async fn open(
    app: &TestApp,
    http: &reqwest::Client,
    query: &str,
    last_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(app.url(&format!("/v1/events?{query}")));
    if let Some(last_id) = last_id {
        request = request.header("last-event-id", last_id);
    }
    request.send().await.expect("events")
}

/// An open stream, its opening checked: `retry: 1000` first.
async fn stream(
    app: &TestApp,
    http: &reqwest::Client,
    query: &str,
    last_id: Option<&str>,
) -> SseStream {
    let response = open(app, http, query, last_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/event-stream"));
    assert_eq!(header("cache-control"), "no-store");
    let mut stream = SseStream::new(response);
    let first = stream.next(T).await.expect("an event").expect("open");
    assert_eq!(first.retry, Some(1000), "{first:?}");
    stream
}

fn finished(view: &Value) -> bool {
    ["success", "fail", "cancelled"].contains(&view["status"].as_str().unwrap_or_default())
}

/// Keeps the highest version of each command event.
fn keep(seen: &mut HashMap<Uuid, Value>, events: &[SseEvent]) {
    for event in events.iter().filter(|event| event.event == "command") {
        let view = event.json();
        let held = seen
            .get(&id_of(&view))
            .and_then(|held| held["version"].as_i64());
        if held < view["version"].as_i64() {
            seen.insert(id_of(&view), view);
        }
    }
}

#[tokio::test]
async fn a_stream_follows_its_ids_to_their_end() {
    let app = TestApp::start().await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 600, "steps": 3}}))
        .await;
    let other = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    let mut events = stream(&app, &app.http, &format!("ids={id}"), None).await;
    let read = events
        .until(T, |event| {
            event.event == "command" && finished(&event.json())
        })
        .await
        .expect("the end pushed");
    let subscribed = read
        .iter()
        .find(|event| event.event == "subscribed")
        .expect("subscribed");
    assert_eq!(
        subscribed.json()["cursor"].as_str(),
        subscribed.id.as_deref()
    );
    let commands: Vec<Value> = read
        .iter()
        .filter(|event| event.event == "command")
        .map(|event| event.json())
        .collect();
    assert!(
        commands.iter().all(|view| id_of(view) == id),
        "only its ids, not {other}"
    );
    let versions: Vec<i64> = commands
        .iter()
        .filter_map(|view| view["version"].as_i64())
        .collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );
    let last = commands.last().expect("a change");
    assert_eq!(last["status"], "success");
    let stored: i64 = sqlx::query_scalar("select version from commands where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert_eq!(last["version"], stored);
    assert!(events.last_id.is_some(), "every cursor goes out as an id");
    app.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_across_a_restart_missing_nothing() {
    let mut app = TestApp::start().await;
    let mut events = stream(&app, &app.http, "all=true", None).await;
    events
        .until(T, |event| event.event == "subscribed")
        .await
        .expect("subscribed");
    let mut submitted = Vec::new();
    for n in 0..10 {
        let body = json!({"type": "demo.sleep", "payload": {"ms": 300 + 100 * n, "steps": 2}});
        submitted.push(app.submit_ok(body).await);
    }
    let mut seen = HashMap::new();
    let read = events
        .until(T, |event| event.event == "command" && event.id.is_some())
        .await
        .expect("a change with a cursor");
    keep(&mut seen, &read);
    // A graceful stop: the stream gets the drain's changes, then ends.
    let restarting = tokio::spawn(async move {
        app.restart().await;
        app
    });
    let read = events.read_to_end(T).await.expect("the stream ends");
    keep(&mut seen, &read);
    let app = restarting.await.expect("restarted");
    let last_id = events.last_id.clone().expect("a cursor");
    for n in 0..5 {
        submitted.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let mut events = stream(&app, &app.http, "all=true", Some(&last_id)).await;
    let mut read_all = Vec::new();
    while submitted
        .iter()
        .any(|id| !seen.get(id).is_some_and(finished))
    {
        let read = events
            .until(T, |event| {
                event.event == "command" || event.event == "reset"
            })
            .await
            .expect("changes");
        assert!(read.iter().all(|event| event.event != "reset"), "{read:?}");
        keep(&mut seen, &read);
        read_all.extend(read);
    }
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as("select id, status, version from commands")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(rows.len(), submitted.len());
    for (id, status, version) in rows {
        assert_eq!(seen[&id]["status"], status, "{id}");
        assert_eq!(seen[&id]["version"], version, "{id}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_in_the_query_is_refused_a_token_there_is_taken_and_origins_are_checked() {
    let app = TestApp::start().await;
    let anonymous = reqwest::Client::new();
    let key = &test_key().key;
    let response = open(
        &app,
        &anonymous,
        &format!("all=true&access_token={key}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "key_in_query", "{problem}");

    let minted: Value = app
        .http
        .post(app.url("/v1/tokens"))
        .json(&json!({"sub": "alice", "ttl_secs": 600}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("token");
    let token = minted["token"].as_str().expect("a token");
    let mut events = stream(
        &app,
        &anonymous,
        &format!("all=true&access_token={token}"),
        None,
    )
    .await;
    events
        .until(T, |event| event.event == "subscribed")
        .await
        .expect("subscribed");
    for query in [
        "",
        "all=true&ids=0196f3a4-6c1e-7d2a-9b3c-4d5e6f708192",
        "ids=nope",
        "all=true&since=7",
    ] {
        let response = open(&app, &app.http, query, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    // The WebSocket's Origin rule: a page of an origin not allowed gets no stream.
    let foreign = app
        .http
        .get(app.url("/v1/events?all=true"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("events");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let problem: Value = foreign.json().await.expect("problem");
    assert_eq!(problem["code"], "origin_not_allowed", "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn a_tokens_stream_is_told_to_renew_and_ends_at_expiry() {
    let app = TestApp::start().await;
    let minted: Value = app
        .http
        .post(app.url("/v1/tokens"))
        .json(&json!({"sub": "alice", "ttl_secs": 4}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("token");
    let token = minted["token"].as_str().expect("a token");
    let mut events = stream(&app, &http_client_with(token), "all=true", None).await;
    let read = events
        .until(T, |event| event.event == "renew")
        .await
        .expect("renew");
    let renew = read.last().expect("renew").json();
    assert_eq!(renew["expires_at"], minted["expires_at"], "{renew}");
    events
        .read_to_end(T)
        .await
        .expect("the stream ends at expiry");
    app.stop().await;
}

#[tokio::test]
async fn a_stream_counts_as_a_socket_in_the_caps() {
    let app = TestApp::start_tweaked(|config| config.auth.max_sockets_per_tenant = 1).await;
    let mut first = stream(&app, &app.http, "all=true", None).await;
    first
        .until(T, |event| event.event == "subscribed")
        .await
        .expect("subscribed");
    let second = open(&app, &app.http, "all=true", None).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(first);
    // The slot comes back once the server sees the reader gone.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let again = open(&app, &app.http, "all=true", None).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the server's count
    }
    app.stop().await;
}

#[tokio::test]
async fn a_quiet_stream_is_kept_open_with_ping_comments() {
    let app = TestApp::start().await;
    let anonymous = reqwest::Client::new();
    let minted: Value = app
        .http
        .post(app.url("/v1/tokens"))
        .json(&json!({"sub": "alice", "ttl_secs": 600}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("token");
    let token = minted["token"].as_str().expect("a token");
    // Past the transport's idle and header timeouts (5 s and 10 s): a stream is a response in
    // flight, kept by its pings.
    let mut events = stream(
        &app,
        &anonymous,
        &format!("all=true&access_token={token}"),
        None,
    )
    .await;
    let read = events
        .until(Duration::from_secs(25), |event| {
            event.comment.as_deref() == Some("ping")
        })
        .await
        .expect("a ping");
    assert!(
        read.iter().all(|event| event.event != "command"),
        "{read:?}"
    );
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1, "subject": "alice"}))
        .await;
    events
        .until(T, |event| {
            event.event == "command" && id_of(&event.json()) == id
        })
        .await
        .expect("still streaming after the ping");
    app.stop().await;
}

#[tokio::test]
async fn a_credential_in_the_query_is_never_logged() {
    let env = crate::common::Env::new();
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("events-log-{}.txt", env.namespace));
    // Everything every crate logs, down to trace: what an operator chasing a bug would turn on.
    let mut server = Proc::spawn_logging(&env, "all", &[("CMDBUS_LOG", "trace")], &log);
    crate::common::wait_ready(&reqwest::Client::new(), &server.base).await;
    env.authorize().await;
    let http = crate::common::http_client();
    let minted: Value = http
        .post(format!("{}/v1/tokens", server.base))
        .json(&json!({"sub": "alice", "ttl_secs": 600}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("token");
    let token = minted["token"].as_str().expect("a token");
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(format!(
            "{}/v1/events?all=true&access_token={token}",
            server.base
        ))
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = SseStream::new(response);
    events
        .until(T, |event| event.event == "subscribed")
        .await
        .expect("subscribed");
    let key = &test_key().key;
    let refused = anonymous
        .get(format!(
            "{}/v1/events?all=true&access_token={key}",
            server.base
        ))
        .send()
        .await
        .expect("events");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    drop(events);
    server.signal("TERM");
    assert!(server.wait_exit(), "the server stops");
    let written = std::fs::read_to_string(&log).expect("the log");
    let _ = std::fs::remove_file(&log);
    assert!(written.contains("/v1/events"), "the requests were logged");
    // The secret part of each: a token's signature, a key's digits.
    let signature = token.rsplit('.').next().expect("a signature");
    assert!(!written.contains(signature), "the token is in the log");
    assert!(
        !written.contains(&key[key.len() - 32..]),
        "the key is in the log"
    );
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
