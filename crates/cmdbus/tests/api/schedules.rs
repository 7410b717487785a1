//! Schedules (recurring commands) against the real services: one command per tick with two api
//! processes sweeping, no tick lost or doubled (their idempotency keys), pause, resume and
//! delete stopping and starting ticks, the missed-tick policies after an outage, and clear
//! refusals. The startup file is `schedule_file`'s.

use super::*;
use chrono::{DateTime, Utc};
use common::http_client_with;
use uuid::Uuid;

pub(crate) async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
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

/// Creates a schedule; answers its id.
async fn create(app: &TestApp, body: Value) -> Uuid {
    let (status, view) = post_json(app, "/v1/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    id_of(&view)
}

/// The commands schedule `id` submitted.
fn of(id: Uuid) -> String {
    format!("select count(*) from commands where idempotency_key like 'schedule:{id}:%'")
}

/// The ticks schedule `id` submitted a command for, oldest first, each with how long after its
/// tick the command was recorded.
async fn ticks(app: &TestApp, id: Uuid) -> Vec<(DateTime<Utc>, Duration)> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "select idempotency_key, created_at from commands
          where idempotency_key like 'schedule:' || $1 || ':%'",
    )
    .bind(id.to_string())
    .fetch_all(&app.pool)
    .await
    .expect("ticks");
    let prefix = format!("schedule:{id}:");
    let mut ticks: Vec<_> = rows
        .into_iter()
        .map(|(key, created_at)| {
            let tick = DateTime::parse_from_rfc3339(key.strip_prefix(&prefix).expect("prefix"))
                .expect("an RFC 3339 tick")
                .with_timezone(&Utc);
            assert_eq!(key, cmdbus_api::tick_key(id, tick));
            let late = (created_at - tick)
                .to_std()
                .unwrap_or_else(|_| panic!("tick {tick} submitted early, at {created_at}"));
            (tick, late)
        })
        .collect();
    ticks.sort();
    ticks
}

/// Asserts that `ticks` are whole seconds one after the other: none lost, none twice.
fn assert_every_second(ticks: &[(DateTime<Utc>, Duration)]) {
    for pair in ticks.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_milliseconds(),
            1_000,
            "ticks {} and {} are not one second apart",
            pair[0].0,
            pair[1].0
        );
    }
}

#[tokio::test]
async fn a_schedule_every_second_submits_one_command_per_tick_with_two_api_processes() {
    let app = TestApp::start().await;
    // A second api process sweeps the same schedules.
    let second = TestApp::start_with(
        app.env.clone(),
        Role::Api,
        cmdbus::builtin_registry(),
        |_| {},
    )
    .await;
    let every_second = |name: &str| {
        json!({"name": name, "type": "demo.echo", "payload": {"from": name},
               "cron": "* * * * * *", "timezone": "Europe/Paris"})
    };
    let watched = create(&app, every_second("watched")).await;
    // Ticking beside it: what the test waits on to know that seconds went by.
    let control = create(&second, every_second("control")).await;
    app.wait_count(&of(watched), "watched ticks", |n| n >= 6)
        .await;

    let (status, paused) =
        post_json(&app, &format!("/v1/schedules/{watched}/pause"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    let before_pause = ticks(&app, watched).await;
    assert_every_second(&before_pause);
    let worst = before_pause
        .iter()
        .map(|(_, late)| *late)
        .max()
        .expect("ticks");
    println!(
        "{} ticks, every one once; latest submit {} ms after its tick",
        before_pause.len(),
        worst.as_millis()
    );
    assert!(worst < cmdbus_api::MISSED_AFTER, "a tick {worst:?} late");
    // Each tick's command runs like any other.
    let last = before_pause.last().expect("ticks").0;
    let last_command: Uuid =
        sqlx::query_scalar("select id from commands where idempotency_key = $1")
            .bind(cmdbus_api::tick_key(watched, last))
            .fetch_one(&app.pool)
            .await
            .expect("last command");
    let view = app.wait_status(last_command, "success", T).await;
    assert_eq!(view["result"], json!({"from": "watched"}));

    // Paused: the control schedule ticks three more times, the watched one not once.
    let control_then = app.count(&of(control)).await;
    app.wait_count(&of(control), "control ticks", |n| n >= control_then + 3)
        .await;
    assert_eq!(
        app.count(&of(watched)).await,
        before_pause.len() as i64,
        "a paused schedule ticked"
    );

    let (status, resumed) = post_json(
        &second,
        &format!("/v1/schedules/{watched}/resume"),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused"], false);
    let resumed_from: DateTime<Utc> = resumed["next_run_at"]
        .as_str()
        .expect("next_run_at")
        .parse()
        .expect("a time");
    app.wait_count(&of(watched), "ticks after resume", |n| {
        n >= before_pause.len() as i64 + 3
    })
    .await;
    let all = ticks(&app, watched).await;
    let (old, new): (Vec<(DateTime<Utc>, Duration)>, Vec<_>) =
        all.iter().copied().partition(|(tick, _)| *tick <= last);
    assert_eq!(old.len(), before_pause.len());
    // The ticks of the pause are not caught up: the first after it is the resume's next tick.
    assert_eq!(new[0].0, resumed_from, "{all:?}");
    assert_every_second(&new);

    // Deleted: again the control ticks three times and the deleted schedule not once.
    let response = app
        .http
        .delete(app.url(&format!("/v1/schedules/{watched}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after_delete = app.count(&of(watched)).await;
    let control_then = app.count(&of(control)).await;
    app.wait_count(&of(control), "control ticks", |n| n >= control_then + 3)
        .await;
    assert_eq!(
        app.count(&of(watched)).await,
        after_delete,
        "a deleted schedule ticked"
    );
    let listed = app.get_json("/v1/schedules").await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["control"], "{listed}");
    assert_every_second(&ticks(&app, control).await);

    let audit = app.get_json("/v1/audit").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|row| row["filter"]["schedule"] == json!(watched))
        .filter_map(|row| row["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "schedule_delete",
            "schedule_resume",
            "schedule_pause",
            "schedule_create"
        ],
        "{audit}"
    );
    second.stop_keeping_env().await;
    app.stop().await;
}

#[tokio::test]
async fn missed_ticks_are_skipped_or_caught_up_once_after_an_outage() {
    // The api alone: the commands wait in `queue`, which is all this test looks at.
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let yearly = |name: &str, missed: &str| json!({"name": name, "type": "demo.noop", "cron": "0 0 1 1 *", "missed": missed});
    let skip = create(&app, yearly("skip", "skip")).await;
    let catch_up = create(&app, yearly("catch up", "catch_up_once")).await;
    let default = create(&app, json!({"type": "demo.noop", "cron": "0 0 1 1 *"})).await;
    // An outage of three years: each schedule's next tick is long past.
    sqlx::query("update schedules set next_run_at = '2023-01-01T00:00:00Z'")
        .execute(&app.pool)
        .await
        .expect("back in time");
    app.wait_count(
        "select count(*) from schedules where next_run_at > now()",
        "schedules moved on",
        |n| n == 3,
    )
    .await;
    // The sweep that moved them on recorded their commands in the same transaction.
    assert_eq!(
        app.count(&of(skip)).await,
        0,
        "skip submitted a missed tick"
    );
    assert_eq!(app.count(&of(default)).await, 0, "the default is not skip");
    let caught_up = ticks(&app, catch_up).await;
    let now = Utc::now();
    let latest_missed: DateTime<Utc> = format!("{}-01-01T00:00:00Z", now.format("%Y"))
        .parse()
        .expect("a time");
    assert_eq!(
        caught_up.iter().map(|(tick, _)| *tick).collect::<Vec<_>>(),
        [latest_missed],
        "one command, for the latest missed tick"
    );
    let listed = app.get_json("/v1/schedules").await;
    for schedule in listed["items"].as_array().expect("items") {
        let next: DateTime<Utc> = schedule["next_run_at"]
            .as_str()
            .expect("next")
            .parse()
            .expect("time");
        assert_eq!(
            next.format("%m-%d %H:%M:%S").to_string(),
            "01-01 00:00:00",
            "{schedule}"
        );
        assert!(next > now, "{schedule}");
        let expected = if schedule["id"] == json!(catch_up) {
            json!(latest_missed)
        } else {
            Value::Null
        };
        assert_eq!(schedule["last_tick_at"], expected, "{schedule}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_schedule_is_refused_with_a_clear_error_and_nothing_recorded() {
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let good = json!({"name": "good", "type": "demo.echo", "payload": 1, "cron": "*/5 * * * *"});
    create(&app, good.clone()).await;
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body["name"] = json!(format!("bad {field}"));
        body[field] = value;
        body
    };
    let refusals = [
        (with("cron", json!("every minute")), 400, "invalid_cron"),
        (with("cron", json!("61 * * * *")), 400, "invalid_cron"),
        (with("cron", json!("0 0 1 1 * 2001")), 400, "invalid_cron"),
        (
            with("timezone", json!("Mars/Olympus")),
            400,
            "invalid_timezone",
        ),
        (with("missed", json!("sometimes")), 422, "invalid_field"),
        (with("type", json!("no.such")), 422, "unknown_type"),
        (good.clone(), 409, "conflict"),
    ];
    for (body, status, code) in refusals {
        let (got, problem) = post_json(&app, "/v1/schedules", body.clone()).await;
        assert_eq!(
            (got.as_u16(), problem["code"].as_str()),
            (status, Some(code)),
            "{body}: {problem}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
    }
    let (_, problem) = post_json(
        &app,
        "/v1/schedules",
        with("timezone", json!("Mars/Olympus")),
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("Mars/Olympus"),
        "{problem}"
    );
    let (status, _) = post_json(&app, "/v1/schedules/not-an-id/pause", json!(null)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, problem) = post_json(
        &app,
        &format!("/v1/schedules/{}/pause", Uuid::now_v7()),
        json!(null),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // `read` lists them but changes none.
    let (status, created) = post_json(
        &app,
        "/v1/keys",
        json!({"name": "reader", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let read = http_client_with(created["key"].as_str().expect("key"));
    let listed = read
        .get(app.url("/v1/schedules"))
        .send()
        .await
        .expect("list");
    assert_eq!(listed.status(), StatusCode::OK);
    let refused = read
        .post(app.url("/v1/schedules"))
        .json(&with("name", json!("by a reader")))
        .send()
        .await
        .expect("create");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("select count(*) from schedules").await, 1);
    app.stop().await;
}
