//! The promises about pushes, each broken for real: a change whose event was lost, versions
//! that commit out of order under a resuming client, a notifier that has no broker at all,
//! and a result nested deeper than a JSON parser's default limit.

use crate::common::{
    Env, TestApp, WsClient, id_of,
    process::{Follower, Proc, change_behind_the_back, unreachable_amqp_url},
};
use cmdbus::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// A legal change (`queue` → `cancelled`) made in SQL: no event is ever published for it.
const CANCEL: &str = "status = 'cancelled', finished_at = now()";

#[tokio::test]
async fn a_connected_client_receives_a_change_whose_event_was_lost() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let id = api.submit_queued().await;
    let mut client = Follower::subscribe(&notifier.ws_url(), None).await;
    client.subscribed().await;
    let mut conn = api.pool.acquire().await.expect("connection");
    let version = change_behind_the_back(&mut conn, id, CANCEL).await;
    drop(conn);
    let seen = client
        .until(Duration::from_secs(3), |c| {
            id_of(c) == id && c["status"] == "cancelled"
        })
        .await
        .expect("the change reached the connected client without an event");
    assert_eq!(seen["version"], version);
    client.close().await;
    notifier.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn a_resume_after_versions_committed_out_of_order_misses_nothing() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let a = api.submit_queued().await;
    let b = api.submit_queued().await;
    let mut client = Follower::subscribe(&notifier.ws_url(), None).await;
    client.subscribed().await;
    // Stays connected throughout: it shows when the notifier has pushed A live, so that the
    // resuming client can only get A from its resume.
    let mut witness = Follower::subscribe(&notifier.ws_url(), None).await;
    witness.subscribed().await;
    // A's change draws its version first but commits last.
    let mut held = api.pool.begin().await.expect("transaction");
    let version_a = change_behind_the_back(&mut held, a, CANCEL).await;
    let cancel = api.post(&format!("/v1/commands/{b}/cancel")).await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let seen_b = client
        .until(T, |c| id_of(c) == b && c["status"] == "cancelled")
        .await
        .expect("B pushed");
    assert!(seen_b["version"].as_i64() > Some(version_a), "{seen_b}");
    let resume = client.resume.clone();
    client.close().await;
    held.commit().await.expect("commit A");
    witness
        .until(T, |c| id_of(c) == a && c["status"] == "cancelled")
        .await
        .expect("A pushed live to the connected client");

    let mut back = Follower::subscribe(&notifier.ws_url(), resume.clone()).await;
    let seen_a = back
        .until(Duration::from_secs(5), |c| {
            id_of(c) == a && c["status"] == "cancelled"
        })
        .await
        .unwrap_or_else(|error| panic!("A not delivered on resume from {resume:?}: {error}"));
    assert_eq!(seen_a["version"], version_a);
    back.close().await;
    witness.close().await;
    notifier.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn a_list_then_a_subscription_from_its_cursor_has_no_gap() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let id = api.submit_queued().await;
    let mut witness = Follower::subscribe(&notifier.ws_url(), None).await;
    witness.subscribed().await;
    let list: Value = api
        .http
        .get(api.url("/v1/commands"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list body");
    // `since`: what to pass as `since` when subscribing.
    let cursor = list["since"].clone();
    assert!(cursor.is_string(), "the list hands out a cursor: {list}");
    // Between the read and the subscription: a change without an event, already pushed live.
    let mut conn = api.pool.acquire().await.expect("connection");
    change_behind_the_back(&mut conn, id, CANCEL).await;
    drop(conn);
    witness
        .until(T, |c| id_of(c) == id && c["status"] == "cancelled")
        .await
        .expect("pushed live");
    let mut client = Follower::subscribe(&notifier.ws_url(), Some(cursor)).await;
    client
        .until(Duration::from_secs(5), |c| {
            id_of(c) == id && c["status"] == "cancelled"
        })
        .await
        .expect("the change after the list is replayed");
    // A version number is not a cursor.
    let mut old_style = WsClient::connect(&notifier.ws_url()).await;
    old_style
        .send(json!({"op": "subscribe", "all": true, "since": 5}))
        .await;
    let refused = old_style.next_json(T).await.expect("reply");
    assert_eq!(
        (&refused["op"], &refused["code"]),
        (&json!("error"), &json!("bad_cursor")),
        "{refused}"
    );
    for socket in [witness, client] {
        socket.close().await;
    }
    old_style.close().await;
    notifier.stop_keeping_env().await;
    api.stop().await;
}

/// A notifier whose broker address answers nothing (no broker at all) serves, reports ready,
/// and pushes every command's changes — runs, a retry, a cancel — within two seconds of their
/// commit, read from PostgreSQL, while the api and a worker elsewhere do the work.
#[tokio::test]
async fn a_notifier_without_a_broker_pushes_every_change_within_two_seconds() {
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::All, cmdbus::builtin_registry(), |_| {}).await;
    let notifier = Proc::spawn(
        &env,
        "notifier",
        &[("CMDBUS_AMQP_URL", &unreachable_amqp_url())],
    );
    // Ready without a broker: PostgreSQL is all a notifier needs.
    crate::common::wait_ready(&reqwest::Client::new(), &notifier.base).await;
    let readiness: Value = reqwest::get(format!("{}/readyz", notifier.base))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readiness body");
    assert_eq!(readiness["broker"], false, "{readiness}");
    let url = format!("{}/v1/ws", notifier.base.replacen("http", "ws", 1));
    let mut client = Follower::subscribe(&url, None).await;
    client.subscribed().await;

    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let retried = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 1}}))
        .await;
    let stepped = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 1_000, "steps": 4}}))
        .await;
    let cancelled = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 60_000, "steps": 60}}))
        .await;
    app.wait_status(cancelled, "running", T).await;
    let response = app
        .http
        .post(app.url(&format!("/v1/commands/{cancelled}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    ids.extend([retried, stepped, cancelled]);

    // Every view as it arrives, with the moment it arrived.
    let arrivals: std::cell::RefCell<Vec<(chrono::DateTime<chrono::Utc>, Value)>> =
        Default::default();
    let all_finished = |arrivals: &[(chrono::DateTime<chrono::Utc>, Value)]| {
        ids.iter().all(|id| {
            arrivals
                .iter()
                .any(|(_, view)| id_of(view) == *id && crate::common::process::finished(view))
        })
    };
    client
        .until(T, |view| {
            arrivals
                .borrow_mut()
                .push((chrono::Utc::now(), view.clone()));
            all_finished(&arrivals.borrow())
        })
        .await
        .expect("every outcome pushed by a notifier that has no broker");
    let arrivals = arrivals.into_inner();
    let stamp = |view: &Value, field: &str| {
        view[field]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
    };
    for (arrived, view) in &arrivals {
        // The moment the pushed state was written (its transaction's start, just before its
        // commit; the database runs on this machine's clock).
        let written = match view["status"].as_str() {
            Some("running") => stamp(view, "started_at"),
            Some("success" | "fail" | "cancelled") => stamp(view, "finished_at"),
            _ => None,
        };
        if let Some(written) = written {
            let late = *arrived - written;
            assert!(
                late <= chrono::Duration::seconds(2),
                "pushed {} ms after it was written: {view}",
                late.num_milliseconds()
            );
        }
    }
    // The client's last view of each command is PostgreSQL's.
    for id in &ids {
        let last = arrivals
            .iter()
            .rev()
            .find(|(_, view)| id_of(view) == *id)
            .map(|(_, view)| view)
            .expect("pushed");
        let stored = app.wait_until(*id, T, |_| true).await.expect("stored view");
        assert_eq!(
            last["version"], stored["version"],
            "{last} against {stored}"
        );
        assert_eq!(last["status"], stored["status"]);
    }
    let status_of = |id: Uuid| {
        arrivals
            .iter()
            .rev()
            .find(|(_, view)| id_of(view) == id)
            .map(|(_, view)| view["status"].clone())
    };
    assert_eq!(status_of(retried), Some(json!("success")));
    assert_eq!(status_of(cancelled), Some(json!("cancelled")));
    client.close().await;
    drop(notifier);
    app.stop().await;
}

#[tokio::test]
async fn a_result_nested_126_levels_deep_is_pushed_as_success() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send(json!({"op": "subscribe", "all": true})).await;
    let reply = ws.next_json(T).await.expect("subscribed");
    assert_eq!(reply["op"], "subscribed", "{reply}");
    let nested = format!("{}{}", "[".repeat(126), "]".repeat(126));
    let response = app
        .http
        .post(app.url("/v1/commands"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"type": "demo.echo", "payload": {nested}}}"#))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = id_of(&response.json().await.expect("view"));
    // Read as text: the message is deeper than a default JSON parser goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let pushed = loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let text = ws
            .next_text(remaining)
            .await
            .expect("the success is pushed");
        if text.contains(&id.to_string()) && text.contains(r#""status":"success""#) {
            break text;
        }
    };
    assert!(pushed.contains(&nested), "the result arrives whole");
    ws.close().await;
    app.stop().await;
}
