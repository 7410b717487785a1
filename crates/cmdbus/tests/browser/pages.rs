//! The console's other pages: a type paused on the queues page (its queue grows) and resumed
//! (it drains); the overview's charts moving during a burst, with a parked failure pointed at;
//! and a read-only key that sees no action on any page (and the API refuses them).

use super::*;

/// The `ready` count the queues page shows for `kind`'s queues.
const DEPTH: &str = r#"
    const row = document.querySelector(`[data-testid="type-row"][data-key="${arguments[0]}"]`);
    const depth = row && row.querySelector('[data-testid="type-depth"]');
    return depth ? Number(depth.textContent) : null;"#;

#[tokio::test]
async fn a_paused_type_queues_up_and_drains_once_resumed() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/#/queues")).await;
    let row = r#"[data-testid="type-row"][data-key="demo.echo"]"#;
    browser
        .wait_for("the demo.echo row", DEPTH, vec![json!("demo.echo")])
        .await;
    browser
        .click(&format!(r#"{row} [data-testid="pause"]"#))
        .await;
    browser
        .wait_for(
            "the confirmation",
            r#"return document.querySelector('[data-testid="confirm"]').open;"#,
            vec![],
        )
        .await;
    browser.click(r#"[data-testid="confirm-yes"]"#).await;
    browser
        .wait_for(
            "demo.echo shown paused",
            r#"const s = document.querySelector(`${arguments[0]} [data-testid="pause-state"]`);
               return s && s.textContent === 'paused';"#,
            vec![json!(row)],
        )
        .await;
    // The workers let go of the queue (at their next heartbeat); then submits pile up in it.
    let deadline = Instant::now() + T;
    loop {
        let queues = app.get_json("/v1/queues").await;
        let consumed = queues["items"]
            .as_array()
            .expect("queues")
            .iter()
            .any(|q| q["type"] == "demo.echo" && q["role"] == "main" && q["consumers"] != 0);
        if !consumed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers still consume demo.echo"
        );
        tokio::time::sleep(POLL).await; // polling the broker's state
    }
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    browser
        .wait_for(
            "the queue depth grown to 5",
            r#"const row = document.querySelector(`[data-testid="type-row"][data-key="demo.echo"]`);
               return Number(row.querySelector('[data-testid="type-depth"]').textContent) >= 5;"#,
            vec![],
        )
        .await;
    browser.screenshot("queues.png").await;
    browser
        .click(&format!(r#"{row} [data-testid="resume"]"#))
        .await;
    browser
        .wait_for(
            "the confirmation",
            r#"return document.querySelector('[data-testid="confirm"]').open;"#,
            vec![],
        )
        .await;
    browser.click(r#"[data-testid="confirm-yes"]"#).await;
    browser
        .wait_for(
            "the queue drained",
            r#"const row = document.querySelector(`[data-testid="type-row"][data-key="demo.echo"]`);
               return row.querySelector('[data-testid="pause-state"]').textContent === 'running'
                 && Number(row.querySelector('[data-testid="type-depth"]').textContent) === 0;"#,
            vec![],
        )
        .await;
    for id in ids {
        app.wait_status(id, "success", T).await;
    }
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_overview_charts_move_during_a_burst() {
    let app = TestApp::start().await;
    // A failure parked in an exception lane: the overview points at it.
    let parked = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(parked, "fail", T).await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/#/overview")).await;
    browser.wait_conn("live").await;
    let before = browser
        .wait_for(
            "the throughput chart",
            r#"const c = document.querySelector('[data-testid="chart-throughput"]');
               return c && c.dataset.total !== undefined ? Number(c.dataset.total) : null;"#,
            vec![],
        )
        .await;
    for n in 0..300 {
        app.submit_ok(json!({"type": "demo.noop", "payload": n}))
            .await;
    }
    // The chart moves while the burst runs (each redraw reads the figures again).
    let moved = browser
        .wait_for(
            "the chart to count the burst",
            r#"const c = document.querySelector('[data-testid="chart-throughput"]');
               const n = Number(c.dataset.total);
               return n >= arguments[0] + 300 && n;"#,
            vec![before.clone()],
        )
        .await;
    println!("overview throughput total went from {before} to {moved}");
    browser
        .wait_for(
            "the state counts",
            r#"return document.querySelector('[data-testid="ov-count-success"]')
                 || document.querySelector('[data-testid="ov-counts"] .hint');"#,
            vec![],
        )
        .await;
    let lane = browser
        .wait_for(
            "the parked failure",
            r#"const li = document.querySelector('[data-testid="ov-parked-lane"]');
               return li && li.textContent;"#,
            vec![],
        )
        .await;
    assert!(
        lane.as_str()
            .is_some_and(|text| text.contains("exceptions1") && text.ends_with('1')),
        "{lane}"
    );
    browser.screenshot("overview.png").await;
    browser.open(&app.url("/#/workers")).await;
    browser
        .wait_for(
            "a live worker",
            r#"return document.querySelectorAll('[data-testid="worker-row"]').length >= 1;"#,
            vec![],
        )
        .await;
    browser.screenshot("workers.png").await;
    browser.close().await;

    // The overview and the command list in dark mode.
    let dark = Browser::launch_dark(DESKTOP).await;
    dark.open_signed_in(&app.url("/#/overview")).await;
    dark.wait_for(
        "the charts drawn",
        r#"return document.querySelector('[data-testid="chart-throughput"] svg') !== null;"#,
        vec![],
    )
    .await;
    dark.screenshot("overview-dark.png").await;
    dark.open(&app.url("/#/")).await;
    dark.wait_for(
        "the list",
        r#"return document.querySelectorAll('[data-testid="row"]').length >= 50;"#,
        vec![],
    )
    .await;
    dark.screenshot("list-dark.png").await;
    dark.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_read_only_key_sees_no_action_anywhere_and_the_api_refuses_them() {
    let app = TestApp::start().await;
    let reader = issue_key(&app, &["read"]).await;
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(failed, "fail", T).await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;
    browser.sign_in(&reader).await;
    browser.wait_row_status(failed, "fail").await;
    // Every page: no button that changes anything.
    const ACTIONS: &str = r#"
        const ids = ['retry', 'cancel', 'discard', 'pause', 'resume', 'select', 'bulk', 'submit-form'];
        return [...document.querySelectorAll(ids.map((id) => `[data-testid="${id}"]`).join(','))]
          .filter((el) => el.getClientRects().length > 0).length;"#;
    assert_eq!(browser.js(ACTIONS, vec![]).await, json!(0), "the list");
    for (page, ready) in [
        (
            format!("/#/commands/{failed}"),
            r#"return document.querySelector('[data-testid="attempts"]') !== null;"#,
        ),
        (
            "/#/queues".to_owned(),
            r#"return document.querySelectorAll('[data-testid="type-row"]').length > 0;"#,
        ),
        (
            "/#/overview".to_owned(),
            r#"return document.querySelector('[data-testid="chart-throughput"] svg') !== null;"#,
        ),
    ] {
        browser.open(&app.url(&page)).await;
        browser.wait_for(&page, ready, vec![]).await;
        assert_eq!(browser.js(ACTIONS, vec![]).await, json!(0), "{page}");
    }
    // And the server refuses them to this key.
    let http = common::http_client_with(&reader);
    for (path, body) in [
        (format!("/v1/commands/{failed}/retry"), json!({})),
        ("/v1/commands/cancel".to_owned(), json!({"dry_run": true})),
        ("/v1/commands/retry".to_owned(), json!({"dry_run": true})),
        ("/v1/types/demo.echo/pause".to_owned(), json!({})),
    ] {
        let status = http
            .post(app.url(&path))
            .json(&body)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status.as_u16(), 403, "{path}");
    }
    browser.close().await;
    app.stop().await;
}
