//! Lists and their filters, operator actions (replay, cancel), the registered types and the metrics.

use super::*;

#[tokio::test]
async fn list_filters_by_status_and_type_and_pages_newest_first() {
    let app = TestApp::start().await;
    let mut echoes = Vec::new();
    for n in 0..5 {
        echoes.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    for id in &echoes {
        app.wait_status(*id, "success", T).await;
    }
    app.wait_status(failed, "fail", T).await;

    let page = |query: &str| {
        let url = app.url(&format!("/v1/commands?{query}"));
        let http = app.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("list")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let first = page("type=demo.echo&limit=2").await;
    let ids: Vec<_> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![echoes[4], echoes[3]], "newest first");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let second = page(&format!("type=demo.echo&limit=2&cursor={cursor}")).await;
    let ids: Vec<_> = second["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![echoes[2], echoes[1]]);
    let failures = page("status=fail").await;
    let ids: Vec<_> = failures["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![failed]);
    assert!(failures["next_cursor"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_and_replays_as_a_new_generation() {
    let app = TestApp::start().await;
    let id = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    let failed = app.wait_status(id, "fail", T).await;
    assert_eq!(failed["error"]["code"], "demo_permanent");
    assert_eq!(failed["error"]["retryable"], false);
    assert_eq!(failed["attempt"], 1, "a permanent error is not retried");

    let retry = app.post(&format!("/v1/commands/{id}/retry")).await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    let again = app
        .wait_until(id, T, |view| {
            view["status"] == "fail" && view["version"].as_i64() > failed["version"].as_i64()
        })
        .await
        .expect("failed again");
    assert_eq!(
        again["attempt"], 1,
        "the replay starts a fresh attempt budget"
    );
    assert_eq!(
        app.count(&format!(
            "select max(generation)::int8 from commands where id = '{id}'"
        ))
        .await,
        1
    );
    // Retrying something that is not failed is a conflict.
    let echo = app.submit_ok(json!({"type": "demo.echo"})).await;
    app.wait_status(echo, "success", T).await;
    let conflict = app.post(&format!("/v1/commands/{echo}/retry")).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test]
async fn a_queued_command_cancels_at_once_and_a_finished_one_conflicts() {
    // Only the api runs: nothing consumes, so the command waits in `queue`.
    let app = TestApp::start_with(Env::new(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let id = app.submit_ok(json!({"type": "demo.echo"})).await;
    app.wait_status(id, "queue", T).await;
    let cancel = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let view: Value = cancel.json().await.expect("json");
    assert_eq!(view["status"], "cancelled");
    let again = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test]
async fn types_lists_the_registered_handlers() {
    let app = TestApp::start().await;
    let types: Value = app.get_json("/v1/types").await;
    let names: Vec<_> = types["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "demo.add",
            "demo.echo",
            "demo.fail",
            "demo.noop",
            "demo.sleep"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_unfinished_commands_and_attempts_by_outcome() {
    let app = TestApp::start().await;
    for n in 0..2 {
        let id = app
            .submit_ok(json!({"type": "demo.echo", "payload": n}))
            .await;
        app.wait_status(id, "success", T).await;
    }
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(failed, "fail", T).await;
    let long = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 60000, "steps": 600}}))
        .await;
    app.wait_status(long, "running", T).await;
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    // From this test's own database: exact, and only the unfinished states (counting finished
    // ones would read the whole table at every scrape).
    for (status, count) in [("new", 0), ("queue", 0), ("running", 1)] {
        assert!(
            text.contains(&format!("cmdbus_commands{{status=\"{status}\"}} {count}\n")),
            "{status}: {text}"
        );
    }
    assert!(
        !text.contains("cmdbus_commands{status=\"success\"}"),
        "{text}"
    );
    let cancelled = app.post(&format!("/v1/commands/{long}/cancel")).await;
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    app.wait_status(long, "cancelled", T).await;
    // Process-wide counters (other tests share the process): present and counting.
    let attempts = text
        .lines()
        .find(|line| {
            line.starts_with("cmdbus_attempts_total")
                && line.contains("type=\"demo.fail\"")
                && line.contains("outcome=\"fail\"")
        })
        .expect("attempts by type and outcome");
    let value: f64 = attempts
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(value >= 1.0, "{attempts}");
    assert!(
        text.contains("cmdbus_handler_seconds_bucket"),
        "handler time histogram"
    );
    assert!(text.contains("cmdbus_commands_submitted_total"));
    assert!(text.contains("cmdbus_broker_connected"));
    app.stop().await;
}

/// A type filter over more commands than one page looks through: each page examines a bounded
/// window (short pages are fine), and following `next_cursor` reaches the oldest match. Failures
/// have an index: `status=fail` finds the same command on its first page.
#[tokio::test]
async fn a_filtered_list_looks_through_a_bounded_window_and_its_cursor_goes_on() {
    let app = TestApp::start().await;
    let oldest = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(oldest, "fail", Duration::from_secs(30))
        .await;
    // Newer than it: more finished commands than one window, straight into the table.
    sqlx::query(
        "insert into commands (id, tenant, type, payload, status, finished_at, changed_xid)
         select gen_random_uuid(), 'default', 'demo.echo', '{}', 'success', now(),
                pg_current_xact_id()
           from generate_series(1, $1::int)",
    )
    .bind(i32::try_from(cmdbus_store::LIST_WINDOW + 500).expect("small"))
    .execute(&app.pool)
    .await
    .expect("insert");
    // gen_random_uuid() is v4, not time-ordered: make every inserted id sort after `oldest`.
    sqlx::query(
        "update commands set id = ('ffffffff' || substr(id::text, 9))::uuid
          where type = 'demo.echo'",
    )
    .execute(&app.pool)
    .await
    .expect("reorder");

    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = "/v1/commands?type=demo.fail&limit=50".to_owned();
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app
            .http
            .get(app.url(&url))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("page");
        pages += 1;
        for item in page["items"].as_array().expect("items") {
            found.push(id_of(item));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(found, [oldest]);
    assert!(
        pages >= 2,
        "the first window held every command: {pages} page(s)"
    );
    let failed: Value = app
        .http
        .get(app.url("/v1/commands?status=fail&limit=50"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("page");
    assert_eq!(failed["items"][0]["id"], oldest.to_string(), "{failed}");
    assert!(failed["next_cursor"].is_null(), "{failed}");
    app.stop().await;
}
