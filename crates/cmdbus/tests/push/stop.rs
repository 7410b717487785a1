//! A graceful stop, for real: SIGTERM to a `cmdbus all` process while a handler runs. Its
//! clients keep getting changes while the worker drains, and only then are they sent away.

use crate::common::{Env, WsClient, http_client, id_of, process::Proc, test_key};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// The close code of a graceful stop (docs/protocol.md): reconnect, elsewhere if you can.
const CLOSE_RESTART: u16 = 1012;

/// What a plain AJAX client does: long-polls the command with the version it holds, again and
/// again, until it ends. Returns the final view, or the error that cut the polling short.
async fn long_poll_until_finished(
    http: reqwest::Client,
    base: String,
    id: Uuid,
) -> Result<Value, String> {
    let url = format!("{base}/v1/commands/{id}?wait=30");
    let mut etag: Option<String> = None;
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        let mut request = http.get(&url);
        if let Some(etag) = &etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|error| error.to_string())?;
        match response.status() {
            StatusCode::NOT_MODIFIED => continue,
            StatusCode::OK => {}
            status => return Err(format!("answered {status}")),
        }
        etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|etag| etag.to_str().ok())
            .map(str::to_owned);
        let view: Value = response.json().await.map_err(|error| error.to_string())?;
        if view["finished_at"].is_string() {
            return Ok(view);
        }
    }
    Err("never finished".to_owned())
}

#[tokio::test]
async fn a_graceful_stop_pushes_the_drained_outcome_then_closes_sockets_with_restart() {
    let env = Env::new();
    let mut server = Proc::spawn(&env, "all", &[("CMDBUS_SHUTDOWN_GRACE_SECS", "20")]);
    crate::common::wait_ready(&reqwest::Client::new(), &server.base).await;
    env.authorize().await;
    let http = http_client();
    let submitted: Value = http
        .post(format!("{}/v1/commands", server.base))
        .json(&json!({"type": "demo.sleep", "payload": {"ms": 3000, "steps": 3}}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("view");
    let id = id_of(&submitted);

    // A browser: authenticates by message, follows the command.
    let ws_url = format!("{}/v1/ws", server.base.replacen("http", "ws", 1));
    let mut browser = WsClient::connect_with(&ws_url, None).await;
    browser
        .send(json!({"op": "auth", "token": test_key().key}))
        .await;
    let authenticated = browser.next_json(T).await.expect("authenticated");
    assert_eq!(authenticated["op"], "authenticated", "{authenticated}");
    browser.send(json!({"op": "subscribe", "ids": [id]})).await;
    loop {
        let reply = browser.next_json(T).await.expect("subscribed");
        if reply["op"] == "subscribed" {
            break;
        }
    }
    browser
        .collect_until(T, |view| view["status"] == "running")
        .await
        .expect("running");
    let poller = tokio::spawn(long_poll_until_finished(
        http.clone(),
        server.base.clone(),
        id,
    ));

    server.signal("TERM");
    // Draining: not ready for new clients, while it goes on serving the ones it has.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let readiness = reqwest::get(format!("{}/readyz", server.base))
            .await
            .expect("readyz answers while draining");
        if readiness.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = readiness.json().await.expect("readiness body");
            assert_eq!(body["draining"], true, "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never said draining"
        );
        tokio::task::yield_now().await;
    }
    // The handler has about 3 s left: it finishes during the drain, and both clients see it.
    let seen = browser
        .collect_until(T, |view| view["finished_at"].is_string())
        .await
        .expect("the browser sees the final state before its socket closes");
    let last = seen.last().expect("a final view");
    assert_eq!(last["status"], "success", "{last}");
    let (code, reason, after) = browser.closed(T).await.expect("closed by the server");
    assert_eq!(code, CLOSE_RESTART, "{reason}");
    assert!(
        after.is_empty(),
        "nothing after the final state but the close: {after:?}"
    );
    let polled = poller
        .await
        .expect("long-poll task")
        .expect("the long-poll sees the final state");
    assert_eq!(polled["status"], "success", "{polled}");
    assert!(server.wait_exit(), "a clean exit");
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
