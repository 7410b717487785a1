//! A command's progress in the page: submitted from the form, after a server restart, with forced
//! polling, and the failed view on a phone screen; and the page itself running on the browser
//! library the server serves to every page.

use super::*;

#[tokio::test]
async fn a_command_submitted_from_the_form_shows_progress_then_success_without_reload() {
    let app = TestApp::start().await;
    // Finished commands around the one under test, as a real table would have.
    let echoed = app
        .submit_ok(json!({"type": "demo.echo", "payload": {"hello": "world"}}))
        .await;
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(echoed, "success", T).await;
    app.wait_status(failed, "fail", T).await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;
    browser.wait_row_status(echoed, "success").await;
    browser.wait_row_status(failed, "fail").await;
    browser.mark_page().await;

    let id = browser
        .submit_form("demo.sleep", r#"{"ms": 4000, "steps": 8}"#)
        .await;

    // Sample the row's progress bar until the command is done. Eight steps over four seconds
    // give the page eight progress events; sampling every 50 ms must see several of them.
    // The screenshot (which waits for the screen to be still) comes only once the bar has
    // been seen advancing, so that it cannot eat the samples this test is about.
    let deadline = Instant::now() + T;
    let mut running = Vec::new();
    let mut screenshot_taken = false;
    let done = loop {
        let row = browser.row(id).await.expect("the row stays in the table");
        if row.status == "running" {
            running.push(row.progress);
            if !screenshot_taken && partial_values(&running).len() >= 2 {
                browser.screenshot("submit-and-live.png").await;
                screenshot_taken = true;
            }
        }
        if is_terminal(&row.status) {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome in time; last {row:?}"
        );
        tokio::time::sleep(POLL).await; // sampling interval, not synchronisation
    };
    assert_eq!(done.status, "success", "{done:?}");
    assert_eq!(done.badge, "success", "the badge says what the row says");
    assert_eq!(done.progress, 100, "{done:?}");
    assert_eq!(done.fill, "100%", "the bar is drawn full");
    assert!(
        partial_values(&running).len() >= 2,
        "the bar advanced while running: {running:?}"
    );
    assert!(
        running.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {running:?}"
    );
    assert!(screenshot_taken, "a running screen was captured");
    assert!(browser.page_is_marked().await, "the page never reloaded");
    // The page and the server agree.
    let view = app.wait_status(id, "success", T).await;
    assert_eq!(view["type"], "demo.sleep");

    // The command page opens on a click, at the command's own address, and shows the whole
    // command; its payload once asked for.
    browser
        .click(&format!(r#"[data-testid="row"][data-id="{id}"]"#))
        .await;
    browser
        .wait_for(
            "the command page",
            r#"const d = document.querySelector('[data-testid="command-page"]');
               return !d.hidden && location.hash === `#/commands/${arguments[0]}`
                 && d.querySelector('[data-testid="detail-status"]').textContent === 'success';"#,
            vec![json!(id)],
        )
        .await;
    browser.click(r#"[data-testid="show-payload"]"#).await;
    let detail = browser
        .wait_for(
            "the payload shown",
            r#"const d = document.querySelector('[data-testid="command-page"]');
               return d.querySelector('[data-testid="payload"]') ? d.textContent : null;"#,
            vec![],
        )
        .await;
    let detail = detail.as_str().expect("dialog text");
    assert!(detail.contains(&id.to_string()), "full id shown: {detail}");
    assert!(detail.contains("\"steps\": 8"), "payload shown: {detail}");
    browser.screenshot("command-page.png").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_page_reconnects_after_the_server_restarts_and_catches_up() {
    let mut app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;
    browser.mark_page().await;
    browser.js(RECORD_CHANGES, vec![]).await;

    // A command that is running when the server goes away: the graceful stop lets the handler
    // finish (well within the grace period) and pushes its success before it closes the socket
    // with 1012, which the page takes as "reconnect now"; what is submitted once the new
    // instance answers reaches the page on its new socket or by catching up from its cursor.
    let across = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 2000, "steps": 4}}))
        .await;
    browser
        .wait_for(
            "the command running with progress",
            &format!("{ROW_STATE} return row && row.status === 'running' && row.progress > 0;"),
            vec![json!(across)],
        )
        .await;
    app.restart().await;
    // Submitted the moment the new instance answers, whether or not the page is back yet.
    let echoed = app
        .submit_ok(json!({"type": "demo.echo", "payload": "after the restart"}))
        .await;
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;

    browser.wait_row_status(across, "success").await;
    browser.wait_row_status(echoed, "success").await;
    browser.wait_row_status(failed, "fail").await;
    browser.wait_conn("live").await;
    let socket_open = browser
        .js(
            "return window.cmdbus.ws?.readyState === WebSocket.OPEN;",
            vec![],
        )
        .await;
    assert_eq!(socket_open, json!(true), "live on a new WebSocket");

    let log: Vec<String> = serde_json::from_value(browser.js("return window.__log;", vec![]).await)
        .expect("the change log survived: no reload");
    let lost = log
        .iter()
        .position(|entry| entry == "conn:reconnecting")
        .unwrap_or_else(|| panic!("the page noticed the closed connection: {log:?}"));
    let success = log
        .iter()
        .position(|entry| *entry == format!("row:{across}:success"))
        .unwrap_or_else(|| panic!("success recorded: {log:?}"));
    assert!(
        success < lost,
        "the success was pushed before the socket closed: {log:?}"
    );
    let last_conn = log.iter().rfind(|entry| entry.starts_with("conn:"));
    assert_eq!(last_conn.map(String::as_str), Some("conn:live"), "{log:?}");
    assert!(browser.page_is_marked().await, "the page never reloaded");

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn forced_polling_still_delivers_the_outcome() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser
        .open_signed_in(&app.url("/?transport=polling"))
        .await;
    browser.wait_conn("polling").await;
    browser.mark_page().await;

    let id = browser
        .submit_form("demo.sleep", r#"{"ms": 1500, "steps": 3}"#)
        .await;
    let done = browser.wait_row_status(id, "success").await;
    assert_eq!(done.badge, "success");
    assert_eq!(done.progress, 100);
    assert_eq!(browser.conn_state().await, "polling");
    let socket = browser.js("return window.cmdbus.ws;", vec![]).await;
    assert_eq!(socket, Value::Null, "polling mode opens no WebSocket");
    assert!(browser.page_is_marked().await, "the page never reloaded");
    app.wait_status(id, "success", T).await;
    browser.screenshot("polling.png").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_failed_view_and_a_phone_screen() {
    let app = TestApp::start().await;
    let echoed = app
        .submit_ok(json!({"type": "demo.echo", "payload": [1, 2, 3]}))
        .await;
    let slept = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 300, "steps": 2}}))
        .await;
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(echoed, "success", T).await;
    app.wait_status(slept, "success", T).await;
    app.wait_status(failed, "fail", T).await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;
    browser.wait_row_status(failed, "fail").await;
    browser.wait_row_status(echoed, "success").await;
    browser.click(r#"[data-testid="view-failed"]"#).await;
    // The Failed view lists the failed command, with the reason on its row, and nothing else.
    let note = browser
        .wait_for(
            "only failed rows",
            r#"const rows = [...document.querySelectorAll('[data-testid="row"]')];
               const failed = rows.find((r) => r.dataset.id === arguments[0]);
               const bulk = document.querySelector('[data-testid="bulk"]');
               return rows.length === 1 && failed && bulk.offsetParent !== null
                 ? failed.querySelector('.progress-note').textContent : null;"#,
            vec![json!(failed)],
        )
        .await;
    assert_ne!(note, json!(""), "the row says why it failed");
    browser.screenshot("failed-view.png").await;
    browser.close().await;

    let phone = Browser::launch(PHONE).await;
    phone.open_signed_in(&app.url("/")).await;
    phone.wait_conn("live").await;
    for id in [echoed, slept] {
        phone.wait_row_status(id, "success").await;
    }
    phone.wait_row_status(failed, "fail").await;
    // The list comes first: it starts on the first screen, and its first card too.
    let tops = phone
        .js(
            r#"const top = (el) => el.getBoundingClientRect().top + scrollY;
               return [top(document.querySelector('#commands')),
                       top(document.querySelector('[data-testid="row"]'))];"#,
            vec![],
        )
        .await;
    let tops: (f64, f64) = serde_json::from_value(tops).expect("two positions");
    assert!(
        tops.0 < 844.0,
        "the list starts on the first screen: {tops:?}"
    );
    assert!(tops.1 < 844.0, "its first row too: {tops:?}");
    let fits = phone
        .js(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            vec![],
        )
        .await;
    assert_eq!(fits, json!(true), "nothing scrolls sideways on a phone");
    phone.screenshot("phone.png").await;
    phone.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_console_runs_on_the_library_every_page_gets() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;

    // The page loaded the served library, and no private client of its own.
    let scripts: Vec<String> = serde_json::from_value(
        browser
            .js(
                r#"return performance.getEntriesByType('resource')
                     .map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js'));"#,
                vec![],
            )
            .await,
    )
    .expect("script paths");
    assert!(
        scripts.iter().any(|path| path == "/v1/client.js"),
        "the console imports /v1/client.js: {scripts:?}"
    );
    assert!(
        !scripts
            .iter()
            .any(|path| path == "/client.js" || path.starts_with("/client/")),
        "no private client: {scripts:?}"
    );
    for path in [
        "/client.js",
        "/client/live.js",
        "/client/watch.js",
        "/client/versions.js",
    ] {
        let status = app
            .http
            .get(app.url(path))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status.as_u16(), 404, "{path} is not served any more");
    }

    // The form's payload reaches the server as typed, through the library's JSON: an integer
    // past 2^53 is not rounded.
    let id = browser
        .submit_form("demo.echo", r#"{"n": 9007199254740993, "x": 1.50}"#)
        .await;
    browser.wait_row_status(id, "success").await;
    let view = app.get_json(&format!("/v1/commands/{id}")).await;
    assert_eq!(
        view["payload"]["n"].as_u64(),
        Some(9_007_199_254_740_993),
        "{view}"
    );

    browser.close().await;
    app.stop().await;
}
