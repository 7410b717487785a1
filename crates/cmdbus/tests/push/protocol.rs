//! The WebSocket protocol against the real app: live changes in version order, gap-free resume
//! from a cursor with `since`, and errors that keep the socket open.

use crate::common::{TestApp, WsClient, id_of};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

const ORDER: [&str; 6] = ["new", "queue", "running", "success", "fail", "cancelled"];

fn rank(status: &Value) -> usize {
    ORDER
        .iter()
        .position(|s| status == s)
        .expect("a known status")
}

#[tokio::test]
async fn a_subscriber_sees_a_command_change_in_version_order_to_its_end() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.subscribe_all(None).await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 600, "steps": 3}}))
        .await;
    let seen = ws
        .collect_until(T, |c| c["id"] == id.to_string() && c["status"] == "success")
        .await
        .expect("success pushed");
    let mine: Vec<&Value> = seen.iter().filter(|c| id_of(c) == id).collect();
    let versions: Vec<i64> = mine.iter().filter_map(|c| c["version"].as_i64()).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions increase: {versions:?}"
    );
    let statuses: Vec<&Value> = mine.iter().map(|c| &c["status"]).collect();
    assert!(
        statuses.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{statuses:?}"
    );
    assert!(statuses.contains(&&json!("running")));
    // Progress arrives while running, never going backwards, at most one report per step. (A
    // change whose event is late — a loaded machine — reaches the socket from the database's
    // tail as the row's latest state, so an intermediate state may be passed over, never shown
    // out of order.)
    let progress: Vec<f64> = mine
        .iter()
        .filter(|c| c["status"] == "running")
        .filter_map(|c| c["progress"].as_f64())
        .collect();
    assert!((1..=3).contains(&progress.len()), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
    let last = mine.last().expect("last");
    assert_eq!(last["progress"], 1.0);
    // Polling agrees with what was pushed.
    let polled = app.wait_status(id, "success", T).await;
    assert_eq!(polled["version"], last["version"]);
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_was_away_resumes_with_since_and_misses_nothing() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.subscribe_all(None).await;
    let first = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    let seen = ws
        .collect_until(T, |c| id_of(c) == first && c["status"] == "success")
        .await
        .expect("first pushed");
    let held = seen
        .iter()
        .filter_map(|c| c["version"].as_i64())
        .max()
        .expect("a version");
    let cursor = ws.cursor.clone().expect("a cursor");
    ws.close().await;

    // While away: three more commands run to the end.
    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    for id in &missed {
        app.wait_status(*id, "success", T).await;
    }

    let mut ws = WsClient::connect(&app.ws_url()).await;
    let replay = ws.subscribe_all(Some(&cursor)).await;
    for id in &missed {
        let latest = replay
            .iter()
            .rfind(|c| id_of(c) == *id)
            .expect("missed command replayed");
        assert_eq!(latest["status"], "success");
    }
    assert!(
        replay
            .iter()
            .all(|c| id_of(c) == first || c["version"].as_i64() > Some(held)),
        "nothing older than the cursor but, at most, the last change it may not cover"
    );

    // After the replay, live changes flow on the same socket.
    let live = app.submit_ok(json!({"type": "demo.noop"})).await;
    ws.collect_until(T, |c| id_of(c) == live && c["status"] == "success")
        .await
        .expect("live after replay");
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn subscribing_by_id_sees_only_that_command_and_bad_requests_keep_the_socket() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send(json!({"op": "subscribe"})).await;
    let error = ws.next_json(T).await.expect("error reply");
    assert_eq!(error["op"], "error");
    ws.send(json!({"op": "dance"})).await;
    let error = ws.next_json(T).await.expect("error reply");
    assert_eq!(error["code"], "bad_request");

    let other = app.submit_ok(json!({"type": "demo.echo"})).await;
    app.wait_status(other, "success", T).await;
    let (_, view) = app
        .submit(json!({"type": "demo.sleep", "payload": {"ms": 300, "steps": 1}}))
        .await;
    let id = id_of(&view);
    ws.send(json!({"op": "subscribe", "ids": [id], "since": 0}))
        .await;
    let error = ws.next_json(T).await.expect("error reply");
    assert_eq!(error["code"], "bad_cursor", "a version is no cursor");
    ws.send(json!({"op": "subscribe", "ids": [id]})).await;
    let reply = ws.next_json(T).await.expect("subscribed");
    assert_eq!(reply["op"], "subscribed");
    assert!(reply["cursor"].is_string(), "{reply}");
    let seen = ws
        .collect_until(T, |c| c["status"] == "success")
        .await
        .expect("pushed");
    assert!(
        seen.iter().all(|c| id_of(c) == id),
        "only the subscribed command"
    );
    ws.close().await;
    app.stop().await;
}

/// A cursor this database never handed out — well-formed, but ahead of it (another database's,
/// or one restored from a backup) — is answered with `reset`, never with a silent empty replay:
/// the client reloads and goes on from the cursor the reset carries.
#[tokio::test]
async fn a_cursor_from_the_future_is_answered_with_reset() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.subscribe_all(None).await;
    let cursor = ws.cursor.clone().expect("a cursor");
    ws.close().await;
    let xmax: u64 = cursor
        .split(':')
        .nth(1)
        .and_then(|xmax| xmax.parse().ok())
        .expect("a snapshot's xmax");
    let ahead = format!("{0}:{0}:", xmax + 1_000_000);

    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send(json!({"op": "subscribe", "all": true, "since": ahead}))
        .await;
    let reset = ws.next_json(T).await.expect("an answer");
    assert_eq!(reset["op"], "reset", "{reset}");
    let subscribed = ws.next_json(T).await.expect("subscribed");
    assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
    let fresh = subscribed["cursor"].as_str().expect("a cursor");
    assert_ne!(fresh, ahead);
    ws.close().await;
    app.stop().await;
}
