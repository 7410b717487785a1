//! Chromium's own `EventSource`, with no library, follows `/v1/events` across a restart of the
//! server: it reconnects by itself with `Last-Event-ID`, and ends with the states PostgreSQL
//! holds.

use super::*;
use uuid::Uuid;

/// Opens an `EventSource` in the page that keeps the highest version of each command it is sent.
const FOLLOW: &str = r#"
    const [url] = arguments;
    window.__seen = {};
    window.__subscribed = 0;
    window.__resets = 0;
    const source = new EventSource(url);
    source.addEventListener('command', (event) => {
      const view = JSON.parse(event.data);
      const held = window.__seen[view.id];
      if (!held || held.version < view.version) window.__seen[view.id] = view;
    });
    source.addEventListener('subscribed', () => { window.__subscribed += 1; });
    source.addEventListener('reset', () => { window.__resets += 1; });
    window.__source = source;
    return true;"#;

/// Whether every one of the ids is seen finished.
const ALL_FINISHED: &str = r#"
    const [ids] = arguments;
    return ids.every((id) => ['success', 'fail', 'cancelled']
      .includes(window.__seen[id] && window.__seen[id].status));"#;

#[tokio::test]
async fn event_source_alone_resumes_with_last_event_id_across_a_restart_missing_nothing() {
    let mut app = TestApp::start().await;
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
    let browser = Browser::launch(DESKTOP).await;
    // Any page of the server's origin: the stream is all this test runs in it.
    browser
        .client
        .goto(&app.url("/healthz"))
        .await
        .expect("load a page");
    let url = format!("/v1/events?all=true&access_token={token}");
    browser.js(FOLLOW, vec![json!(url)]).await;
    browser
        .wait_for("subscribed", "return window.__subscribed >= 1;", vec![])
        .await;

    let mut ids = Vec::new();
    for n in 0..4 {
        let payload = json!({"ms": 800 + 200 * n, "steps": 2});
        let body = json!({"type": "demo.sleep", "payload": payload, "subject": "alice"});
        ids.push(app.submit_ok(body).await);
    }
    app.restart().await;
    for n in 0..3 {
        let body = json!({"type": "demo.echo", "payload": n, "subject": "alice"});
        ids.push(app.submit_ok(body).await);
    }
    let ids_json = json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>());
    browser
        .wait_for("every command finished", ALL_FINISHED, vec![ids_json])
        .await;
    let subscribed = browser.js("return window.__subscribed;", vec![]).await;
    assert!(
        subscribed.as_i64() >= Some(2),
        "it reconnected: {subscribed}"
    );
    let resets = browser.js("return window.__resets;", vec![]).await;
    assert_eq!(resets, json!(0), "a resume, not a reload");
    let seen = browser.js("return window.__seen;", vec![]).await;
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as("select id, status, version from commands")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(rows.len(), ids.len());
    for (id, status, version) in rows {
        let view = &seen[id.to_string()];
        assert_eq!(view["status"], status, "{view}");
        assert_eq!(view["version"], version, "{view}");
    }
    browser.close().await;
    app.stop().await;
}
