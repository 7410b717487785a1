//! The operator API: pause and resume a type (stored, shared by every worker, surviving a
//! restart), queue depths, bulk cancel and bulk retry bounded by their dry run, the audit
//! trail, and a `read` key refused every action.

use super::*;
use common::http_client_with;

/// `GET /v1/queues`, the queue called `name`.
pub(super) async fn queue(app: &TestApp, name: &str) -> Value {
    let list: Value = app
        .http
        .get(app.url("/v1/queues"))
        .send()
        .await
        .expect("queues")
        .json()
        .await
        .expect("json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|queue| queue["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no queue {name} in {list}"))
}

/// Polls `GET /v1/queues` until the queue `name` satisfies `done` (for at most `T`).
pub(super) async fn wait_queue(app: &TestApp, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = queue(app, name).await;
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue {name}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the broker's counts
    }
}

fn main_queue(app: &TestApp, kind: &str) -> String {
    format!("{}.cmd.{kind}", app.env.namespace)
}

pub(super) async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

pub(super) async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.expect("json")
}

async fn paused_in_types(app: &TestApp, kind: &str) -> Value {
    get_json(app, "/v1/types").await["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == kind)
        .map(|t| t["paused"].clone())
        .expect("type listed")
}

#[tokio::test]
async fn a_paused_type_waits_in_its_queue_and_runs_on_resume() {
    const N: i64 = 5;
    let app = TestApp::start().await;
    // A second worker process: the pause is shared by every one.
    let second = TestApp::start_with(
        app.env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |_| {},
    )
    .await;
    let queue_name = main_queue(&app, "demo.echo");
    wait_queue(&app, &queue_name, |q| q["consumers"] == 2).await;

    let (status, paused) = post_json(&app, "/v1/types/demo.echo/pause", json!(null)).await;
    let asked = tokio::time::Instant::now();
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused_in_types(&app, "demo.echo").await, true);
    assert_eq!(paused_in_types(&app, "demo.noop").await, false);
    // Both workers cancel the type's consumers within about a second (one heartbeat).
    wait_queue(&app, &queue_name, |q| q["consumers"] == 0).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "consumers cancelled after {:?}",
        asked.elapsed()
    );

    let mut ids = Vec::new();
    for n in 0..N {
        ids.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let depth = wait_queue(&app, &queue_name, |q| q["ready"].as_i64() == Some(N)).await;
    assert!(depth["unacked"].is_null(), "{depth}");
    assert_eq!(depth["role"], "main");
    assert_eq!(depth["type"], "demo.echo");
    // Another type still runs meanwhile: the pause is the type's only.
    let noop = app.submit_ok(json!({"type": "demo.noop"})).await;
    app.wait_status(noop, "success", T).await;
    assert_eq!(
        app.count("select count(*) from commands where type = 'demo.echo' and status <> 'queue'")
            .await,
        0,
        "a paused type's command ran"
    );
    assert_eq!(
        app.count("select count(*) from command_attempts").await,
        1,
        "only the noop ran"
    );

    // Every queue is listed: main, partitions, both lanes, and the retry tiers.
    let list = get_json(&app, "/v1/queues").await;
    let roles: std::collections::BTreeSet<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|q| q["role"].as_str())
        .collect();
    for role in ["main", "partition", "exceptions1", "exceptions2", "retry"] {
        assert!(roles.contains(role), "{role} missing: {list}");
    }

    let (status, resumed) = post_json(&app, "/v1/types/demo.echo/resume", json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused"], false);
    for id in ids {
        app.wait_status(id, "success", T).await;
    }
    wait_queue(&app, &queue_name, |q| q["ready"] == 0).await;
    assert_eq!(paused_in_types(&app, "demo.echo").await, false);
    wait_queue(&app, &queue_name, |q| q["consumers"] == 2).await;
    second.stop_keeping_env().await;

    let audit = get_json(&app, "/v1/audit").await;
    let actions: Vec<(&str, i64)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| {
            (
                row["action"].as_str().unwrap_or_default(),
                row["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(actions, vec![("resume", 1), ("pause", 1)], "{audit}");
    assert_eq!(audit["items"][0]["filter"], json!({"type": "demo.echo"}));
    let actor = audit["items"][0]["actor"].as_str().unwrap_or_default();
    assert!(actor.starts_with("key:"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_pause_survives_a_worker_restart_and_an_unknown_type_is_refused() {
    let mut app = TestApp::start().await;
    let (status, _) = post_json(&app, "/v1/types/demo.echo/pause", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    // Pausing again changes nothing and says so in the trail.
    let (status, again) = post_json(&app, "/v1/types/demo.echo/pause", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["paused"], true);
    let (status, unknown) = post_json(&app, "/v1/types/no.such/pause", json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(unknown["code"], "not_found");

    app.restart().await;
    // The restarted worker consumes the other types, and never the paused one.
    wait_queue(&app, &main_queue(&app, "demo.noop"), |q| {
        q["consumers"].as_u64() >= Some(1)
    })
    .await;
    let id = app.submit_ok(json!({"type": "demo.echo"})).await;
    let echo = wait_queue(&app, &main_queue(&app, "demo.echo"), |q| q["ready"] == 1).await;
    assert_eq!(echo["consumers"], 0, "{echo}");
    let view = get_json(&app, &format!("/v1/commands/{id}")).await;
    assert_eq!(view["status"], "queue");

    let (status, _) = post_json(&app, "/v1/types/demo.echo/resume", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    app.wait_status(id, "success", T).await;
    let counts: Vec<i64> = get_json(&app, "/v1/audit").await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| row["count"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        counts,
        vec![1, 0, 1],
        "resume, the second pause (no change), the first"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_running_command_finishes_during_a_pause() {
    let app = TestApp::start().await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 1500, "steps": 3}}))
        .await;
    app.wait_status(id, "running", T).await;
    let (status, _) = post_json(&app, "/v1/types/demo.sleep/pause", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    wait_queue(&app, &main_queue(&app, "demo.sleep"), |q| {
        q["consumers"] == 0
    })
    .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["attempt"], 1, "it ran once, not cut off: {done}");
    app.stop().await;
}

/// Submits `n` `demo.echo` to an api without workers; returns their ids once all are queued.
async fn queued(app: &TestApp, n: usize) -> Vec<uuid::Uuid> {
    let ids: Vec<_> = join_all((0..n).map(|_| app.submit_ok(json!({"type": "demo.echo"})))).await;
    app.wait_count(
        "select count(*) from commands where status = 'queue'",
        "queued",
        |count| count >= i64::try_from(ids.len()).unwrap_or(i64::MAX),
    )
    .await;
    ids
}

#[tokio::test]
async fn bulk_cancel_takes_what_its_dry_run_counted_while_commands_keep_arriving() {
    // Only the api runs: nothing consumes, so commands wait in `queue`.
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    queued(&app, 30).await;
    let filter = json!({"type": "demo.echo", "status": "queue"});
    let mut dry = filter.clone();
    dry["dry_run"] = json!(true);
    let (status, preview) = post_json(&app, "/v1/commands/cancel", dry).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["matched"], 30);
    assert_eq!(preview["cancelled"], 0);
    assert_eq!(
        app.count("select count(*) from commands where status = 'cancelled'")
            .await,
        0
    );

    // More arrive after the preview, and while the action runs.
    let later = queued(&app, 10).await;
    let arriving = join_all((0..10).map(|_| app.submit_ok(json!({"type": "demo.echo"}))));
    let mut action = filter.clone();
    action["until"] = preview["until"].clone();
    action["limit"] = preview["matched"].clone();
    let ((status, done), during) =
        tokio::join!(post_json(&app, "/v1/commands/cancel", action), arriving);
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["cancelled"], preview["matched"], "{done}");
    assert_eq!(
        app.count("select count(*) from commands where status = 'cancelled'")
            .await,
        30
    );
    let spared: Vec<String> = later
        .iter()
        .chain(&during)
        .map(|id| format!("'{id}'"))
        .collect();
    assert_eq!(
        app.count(&format!(
            "select count(*) from commands where status = 'cancelled' and id in ({})",
            spared.join(",")
        ))
        .await,
        0,
        "a command submitted after the preview was cancelled"
    );

    // A selection of ids; a `limit` below the count bounds it too.
    let (status, some) = post_json(
        &app,
        "/v1/commands/cancel",
        json!({"ids": later[..3], "limit": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{some}");
    assert_eq!(
        (&some["matched"], &some["cancelled"]),
        (&json!(3), &json!(2))
    );
    let (status, too_many) = post_json(
        &app,
        "/v1/commands/cancel",
        json!({"ids": vec![later[0]; 1001]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{too_many}");
    let (status, _) = post_json(&app, "/v1/commands/cancel", json!({"status": "success"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // One audit row per action, none per dry run, newest first, paged.
    let audit = get_json(&app, "/v1/audit").await;
    let rows = audit["items"].as_array().expect("items");
    assert_eq!(rows.len(), 2, "{audit}");
    assert_eq!(
        (&rows[0]["action"], &rows[0]["count"]),
        (&json!("cancel"), &json!(2))
    );
    assert_eq!(
        (&rows[1]["action"], &rows[1]["count"]),
        (&json!("cancel"), &json!(30))
    );
    assert_eq!(rows[1]["filter"]["type"], "demo.echo");
    assert_eq!(rows[1]["filter"]["until"], preview["until"]);
    assert!(audit["next"].is_null(), "{audit}");
    let first = get_json(&app, "/v1/audit?limit=1").await;
    assert_eq!(first["items"][0]["id"], rows[0]["id"]);
    let next = first["next"].as_i64().expect("a next page");
    let second = get_json(&app, &format!("/v1/audit?limit=1&before={next}")).await;
    assert_eq!(second["items"][0]["id"], rows[1]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn bulk_retry_replays_no_more_than_its_preview_counted() {
    let app = TestApp::start().await;
    let fail = || app.submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}));
    for id in join_all((0..3).map(|_| fail())).await {
        app.wait_status(id, "fail", T).await;
    }
    let (status, preview) = post_json(
        &app,
        "/v1/commands/retry",
        json!({"type": "demo.fail", "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["matched"], 3);
    // Two more fail after the preview ("preview 10, retried 11").
    for id in join_all((0..2).map(|_| fail())).await {
        app.wait_status(id, "fail", T).await;
    }
    let (status, done) = post_json(
        &app,
        "/v1/commands/retry",
        json!({"type": "demo.fail", "until": preview["until"], "limit": preview["matched"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["retried"], 3, "{done}");
    assert_eq!(
        app.count("select count(*) from commands where generation = 1")
            .await,
        3
    );
    let audit = get_json(&app, "/v1/audit").await;
    assert_eq!(audit["items"][0]["action"], "retry", "{audit}");
    assert_eq!(audit["items"][0]["count"], 3, "{audit}");
    app.stop().await;
}

/// A key of the test's tenant with only `scopes`.
pub(super) async fn key_with(app: &TestApp, scopes: &[&str]) -> reqwest::Client {
    let (status, created) = post_json(
        app,
        "/v1/keys",
        json!({"name": format!("only {}", scopes.join(" ")), "scopes": scopes}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    http_client_with(created["key"].as_str().expect("key"))
}

#[tokio::test]
async fn a_read_key_is_refused_every_action_and_pausing_needs_admin() {
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let id = app.submit_queued().await;
    let read = key_with(&app, &["read"]).await;
    let posts = [
        ("/v1/types/demo.echo/pause", json!(null)),
        ("/v1/types/demo.echo/resume", json!(null)),
        ("/v1/commands/cancel", json!({"dry_run": true})),
        ("/v1/commands/cancel", json!({"ids": [id]})),
        ("/v1/commands/retry", json!({"dry_run": true})),
        ("/v1/commands/discard", json!({"dry_run": true})),
        ("/v1/commands/discard", json!({"ids": [id]})),
    ];
    let discard_one = format!("/v1/commands/{id}/discard");
    let posts: Vec<(&str, Value)> = posts
        .into_iter()
        .chain([(discard_one.as_str(), json!(null))])
        .collect();
    for (path, body) in &posts {
        let response = read
            .post(app.url(path))
            .json(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    for path in ["/v1/audit", "/v1/queues"] {
        let response = read.get(app.url(path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "GET {path}");
    }
    let view = get_json(&app, &format!("/v1/commands/{id}")).await;
    assert_eq!(view["status"], "queue", "a refused action changed nothing");
    assert_eq!(
        app.count("select count(*) from paused_types").await,
        0,
        "a refused pause paused"
    );

    // `operate` without `admin` acts on its tenant's commands, not on the shared types.
    let operate = key_with(&app, &["read", "operate"]).await;
    let response = operate
        .post(app.url("/v1/types/demo.echo/pause"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = operate
        .post(app.url("/v1/commands/cancel"))
        .json(&json!({"ids": [id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let audit: Value = operate
        .get(app.url("/v1/audit"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(audit["items"][0]["count"], 1, "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_paused_type_is_not_published_again_by_the_redelivery_sweep() {
    // Only the api runs, redelivering unclaimed messages after a second.
    let app = TestApp::start_with(
        Env::new(),
        Role::Api,
        cmdbus::builtin_registry(),
        |config| {
            config.redeliver_after_secs = 1.0;
        },
    )
    .await;
    let (status, _) = post_json(&app, "/v1/types/demo.echo/pause", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    let echo = app.submit_queued().await;
    let noop = app.submit_ok(json!({"type": "demo.noop"})).await;
    app.wait_status(noop, "queue", T).await;
    // The unpaused type's copy shows that the sweep ran past the paused command's due time.
    wait_queue(&app, &main_queue(&app, "demo.noop"), |q| {
        q["ready"].as_u64() >= Some(2)
    })
    .await;
    let paused = queue(&app, &main_queue(&app, "demo.echo")).await;
    assert_eq!(
        paused["ready"], 1,
        "a paused type's message was copied: {paused}"
    );
    let view = get_json(&app, &format!("/v1/commands/{echo}")).await;
    assert_eq!(view["status"], "queue");
    app.stop().await;
}
