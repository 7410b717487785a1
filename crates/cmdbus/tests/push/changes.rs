//! The HTTP change feed `GET /v1/changes` against the real app: one request at a time follows
//! many commands to the states PostgreSQL holds; a wait answers when a change commits; cursors
//! it cannot serve answer a reset; a token sees only its reach; `ids` and `limit` narrow it.

use crate::common::{TestApp, http_client_with, id_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::HashMap, time::Duration};
use tokio::time::Instant;
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// `GET /v1/changes` with this query: the status and the body.
async fn changes(app: &TestApp, http: &reqwest::Client, query: &str) -> (StatusCode, Value) {
    let response = http
        .get(app.url(&format!("/v1/changes?{query}")))
        .send()
        .await
        .expect("changes");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

/// A starting point: the cursor of now.
async fn now(app: &TestApp, http: &reqwest::Client) -> String {
    let (status, body) = changes(app, http, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changes"], json!([]));
    assert_eq!(body["more"], false);
    body["cursor"].as_str().expect("a cursor").to_owned()
}

/// Keeps the highest version of each command in `page`; returns how many it kept.
fn keep(seen: &mut HashMap<Uuid, Value>, page: &Value) -> usize {
    let mut kept = 0;
    for view in page["changes"].as_array().expect("changes") {
        let held = seen
            .get(&id_of(view))
            .and_then(|held| held["version"].as_i64());
        if held < view["version"].as_i64() {
            seen.insert(id_of(view), view.clone());
            kept += 1;
        }
    }
    kept
}

fn finished(view: &Value) -> bool {
    ["success", "fail", "cancelled"].contains(&view["status"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn one_request_at_a_time_follows_200_commands_to_the_states_postgresql_holds() {
    let app = TestApp::start().await;
    let mut cursor = now(&app, &app.http).await;
    let mut submitted = Vec::new();
    for n in 0..200 {
        let kind = if n % 3 == 0 { "demo.fail" } else { "demo.echo" };
        let payload = if n % 3 == 0 {
            json!({"permanent": true})
        } else {
            json!(n)
        };
        submitted.push(
            app.submit_ok(json!({"type": kind, "payload": payload}))
                .await,
        );
    }
    let mut seen = HashMap::new();
    let deadline = Instant::now() + T;
    while submitted
        .iter()
        .any(|id| !seen.get(id).is_some_and(finished))
    {
        assert!(Instant::now() < deadline, "not every command seen ending");
        let (status, page) = changes(&app, &app.http, &format!("since={cursor}&wait=10")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        keep(&mut seen, &page);
        cursor = page["cursor"].as_str().expect("a cursor").to_owned();
    }
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as("select id, status, version from commands")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 200);
    for (id, status, version) in rows {
        let view = &seen[&id];
        assert_eq!(view["status"], status, "{view}");
        assert_eq!(view["version"], version, "{view}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wait_answers_as_soon_as_a_change_commits() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let cursor = now(&api, &api.http).await;
    let started = Instant::now();
    let waiting = {
        let http = api.http.clone();
        let url = api.url(&format!("/v1/changes?since={cursor}&wait=60"));
        tokio::spawn(async move { http.get(url).send().await?.json::<Value>().await })
    };
    let id = api
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    let page = waiting.await.expect("task").expect("an answer");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered at the change, not at the end of the wait"
    );
    let ids: Vec<Uuid> = page["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, [id], "{page}");
    assert_ne!(page["cursor"], json!(cursor));
    // With nothing new, the wait ends empty at its deadline, from a cursor that moved on.
    let quiet = page["cursor"].as_str().expect("a cursor");
    let (status, later) = changes(&api, &api.http, &format!("since={quiet}&wait=1")).await;
    assert_eq!(status, StatusCode::OK);
    // The command may have moved to `queue` since: only it may show.
    for view in later["changes"].as_array().expect("changes") {
        assert_eq!(id_of(view), id);
    }
    assert_eq!(later["more"], false);
    notifier.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn a_cursor_the_feed_cannot_serve_answers_a_reset() {
    let app = TestApp::start().await;
    let cursor = now(&app, &app.http).await;
    let xmax: u64 = cursor
        .split(':')
        .nth(1)
        .and_then(|xmax| xmax.parse().ok())
        .expect("a snapshot's xmax");
    let ahead = format!("{0}:{0}:", xmax + 1_000_000);
    let (status, problem) = changes(&app, &app.http, &format!("since={ahead}&wait=5")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "reset");
    let fresh = problem["cursor"].as_str().expect("a fresh cursor");
    let (status, page) = changes(&app, &app.http, &format!("since={fresh}")).await;
    assert_eq!(status, StatusCode::OK, "the fresh cursor serves: {page}");

    // More owed than a resume replays: 410, with a cursor that serves.
    app.submit_ok(json!({"type": "demo.noop", "payload": {}}))
        .await;
    sqlx::query(
        "insert into commands
         select (jsonb_populate_record(null::commands, to_jsonb(c) || jsonb_build_object(
                   'id', gen_random_uuid(), 'idempotency_key', null,
                   'changed_xid', pg_current_xact_id()::text))).*
           from (select * from commands limit 1) c, generate_series(1, 5000)",
    )
    .execute(&app.pool)
    .await
    .expect("5,000 more changes");
    let (status, problem) = changes(&app, &app.http, &format!("since={fresh}")).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
    assert_eq!(problem["code"], "reset");
    let fresh = problem["cursor"].as_str().expect("a fresh cursor");
    let (status, page) = changes(&app, &app.http, &format!("since={fresh}")).await;
    assert_eq!(status, StatusCode::OK, "the fresh cursor serves: {page}");

    let (status, problem) = changes(&app, &app.http, "since=7").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "bad_cursor");
    let (status, _) = changes(&app, &app.http, &format!("since={fresh}&wait=61")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = changes(&app, &app.http, &format!("since={fresh}&ids=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn a_browser_token_sees_only_its_reach_and_ids_narrow_it() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let response = api
        .http
        .post(api.url("/v1/tokens"))
        .json(&json!({"sub": "alice", "ttl_secs": 600}))
        .send()
        .await
        .expect("mint");
    let minted: Value = response.json().await.expect("token");
    let alice = http_client_with(minted["token"].as_str().expect("a token"));
    let cursor = now(&api, &alice).await;
    let submit = |subject: &'static str| {
        api.submit_ok(json!({"type": "demo.echo", "payload": 1, "subject": subject}))
    };
    let (mine, other, also_mine) = (
        submit("alice").await,
        submit("bob").await,
        submit("alice").await,
    );
    for id in [mine, other, also_mine] {
        api.wait_status(id, "queue", T).await;
    }

    let (status, page) = changes(&api, &alice, &format!("since={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut seen = HashMap::new();
    keep(&mut seen, &page);
    let mut ids: Vec<Uuid> = seen.keys().copied().collect();
    ids.sort();
    assert_eq!(ids, [mine, also_mine], "only alice's: {page}");

    // `ids` narrows the key's view, and cannot widen the token's.
    let (_, page) = changes(
        &api,
        &api.http,
        &format!("since={cursor}&ids={other},{mine}"),
    )
    .await;
    let mut seen = HashMap::new();
    keep(&mut seen, &page);
    let mut ids: Vec<Uuid> = seen.keys().copied().collect();
    ids.sort();
    let mut expected = vec![other, mine];
    expected.sort();
    assert_eq!(ids, expected, "{page}");
    let (_, page) = changes(&api, &alice, &format!("since={cursor}&ids={other}")).await;
    assert_eq!(page["changes"], json!([]), "bob's is out of alice's reach");
    notifier.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn a_small_limit_pages_with_more_and_misses_nothing() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let mut cursor = now(&api, &api.http).await;
    let mut submitted = Vec::new();
    for n in 0..7 {
        let id = api
            .submit_ok(json!({"type": "demo.echo", "payload": n}))
            .await;
        api.wait_status(id, "queue", T).await;
        submitted.push(id);
    }
    let mut seen = HashMap::new();
    let mut pages = 0;
    loop {
        let (status, page) = changes(&api, &api.http, &format!("since={cursor}&limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        assert!(
            page["changes"].as_array().expect("changes").len() <= 2,
            "{page}"
        );
        keep(&mut seen, &page);
        cursor = page["cursor"].as_str().expect("a cursor").to_owned();
        if page["more"] == false {
            break;
        }
        assert!(pages < 20, "paging ends");
    }
    assert!(pages >= 4, "7 commands in pages of 2: {pages}");
    for id in &submitted {
        assert_eq!(seen[id]["status"], "queue", "{id}");
    }
    assert_eq!(seen.len(), submitted.len());
    // Caught up: the last cursor owes nothing.
    let (_, page) = changes(&api, &api.http, &format!("since={cursor}")).await;
    assert_eq!(page["changes"], json!([]), "{page}");
    notifier.stop_keeping_env().await;
    api.stop().await;
}
