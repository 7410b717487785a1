//! An operator's day in the console's list and command page: a failure found by its error code
//! (and a command by a fragment of its id), its page opened by URL with its attempt timeline, a
//! selection of three retried after a dry-run count; a bulk cancel of everything matching a
//! filter, acting on exactly the count it showed; a parked failure discarded from its page.

use super::*;
use uuid::Uuid;

/// The text of `testid`'s `data-n`, once it has one.
const COUNT_OF: &str = r#"
    const el = document.querySelector(`[data-testid="${arguments[0]}"]`);
    return el && el.getClientRects().length > 0 ? Number(el.dataset.n) : null;"#;

/// Waits until the rows shown are exactly `ids` (any order).
async fn wait_rows(browser: &Browser, what: &str, ids: &[Uuid]) {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    browser
        .wait_for(
            what,
            r#"const rows = [...document.querySelectorAll('[data-testid="row"]')].map((r) => r.dataset.id);
               return rows.length === arguments[0].length && arguments[0].every((id) => rows.includes(id));"#,
            vec![json!(ids)],
        )
        .await;
}

#[tokio::test]
async fn an_operator_finds_a_failure_by_code_reads_its_attempts_and_retries_a_selection() {
    let app = TestApp::start().await;
    let operator = issue_key(&app, &["read", "operate"]).await;
    // Three that fail twice with `demo_failure` (two attempts each), and failures with other
    // codes around them.
    let mut failing = Vec::new();
    for _ in 0..3 {
        let body = json!({"type": "demo.fail", "payload": {"times": 9}, "max_attempts": 2});
        failing.push(app.submit_ok(body).await);
    }
    let other = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    let echoed = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    for id in failing.iter().chain([&other]) {
        app.wait_status(*id, "fail", T).await;
    }
    app.wait_status(echoed, "success", T).await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;
    browser.sign_in(&operator).await;
    browser.wait_conn("live").await;
    browser.wait_row_status(other, "fail").await;
    // Find them by their error code, typed in the filter.
    browser.click(r#"[data-testid="more-filters"]"#).await;
    browser
        .type_into(r#"[data-testid="filter-error-code"]"#, "demo_failure")
        .await;
    wait_rows(&browser, "the three demo_failure rows", &failing).await;
    browser
        .wait_for(
            "the error code in the address",
            "return location.search.includes('error_code=demo_failure');",
            vec![],
        )
        .await;
    // The totals are the filter's: three failed.
    browser
        .wait_for(
            "the totals of the filter",
            r#"const t = document.querySelector('[data-testid="total-fail"]');
               return t && t.textContent === 'fail 3';"#,
            vec![],
        )
        .await;
    // A fragment of an id finds that command alone.
    let fragment = failing[1].simple().to_string();
    browser
        .type_into(
            r#"[data-testid="filter-q"]"#,
            &fragment[fragment.len() - 8..],
        )
        .await;
    wait_rows(&browser, "the command searched for", &failing[1..2]).await;

    // Its page, opened by URL: the timeline has both runs.
    let first = failing[0];
    browser
        .open(&app.url(&format!("/#/commands/{first}")))
        .await;
    let outcomes = browser
        .wait_for(
            "the attempt timeline",
            r#"const rows = [...document.querySelectorAll('[data-testid="attempt"]')];
               return rows.length === 2 && rows.map((r) => r.dataset.outcome);"#,
            vec![],
        )
        .await;
    assert_eq!(outcomes, json!(["retry", "fail"]), "two runs, in order");
    let line = browser
        .js(
            r#"return document.querySelector('[data-testid="attempt-line"]').textContent;"#,
            vec![],
        )
        .await;
    assert_eq!(line, json!("Attempt 2 of 2"));
    browser.screenshot("command-attempts.png").await;

    // Back to the filtered list; select the three: two boxes clicked, the third row reached
    // with the arrow keys and ticked with Space.
    browser.open(&app.url("/?error_code=demo_failure")).await;
    wait_rows(&browser, "the three rows again", &failing).await;
    let ids = browser.row_ids().await;
    for id in &ids[..2] {
        browser
            .click(&format!(
                r#"[data-testid="row"][data-id="{id}"] [data-testid="select"]"#
            ))
            .await;
    }
    browser.press('\u{E015}').await; // ArrowDown, from the second row (focused by its box)
    let focused = browser
        .js("return document.activeElement.dataset.id;", vec![])
        .await;
    assert_eq!(focused, json!(ids[2]), "the arrow moved to the third row");
    browser.press(' ').await;
    let selected = browser
        .wait_for(
            "three selected",
            "const n = window.cmdbus.state.selected.size; return n === 3 && n;",
            vec![],
        )
        .await;
    assert_eq!(selected, json!(3));
    browser
        .choose(r#"[data-testid="bulk-scope"]"#, "selection")
        .await;
    browser.click(r#"[data-testid="bulk-retry"]"#).await;
    let shown = browser
        .wait_for("the dry-run count", COUNT_OF, vec![json!("bulk-count")])
        .await;
    assert_eq!(shown, json!(3), "the dry run counts the three");
    browser.screenshot("bulk-preview.png").await;
    browser.click(r#"[data-testid="bulk-confirm"]"#).await;
    let done = browser
        .wait_for("the retry done", COUNT_OF, vec![json!("bulk-done")])
        .await;
    assert_eq!(done, shown, "acted on as many as it showed");
    let replayed = app
        .count("select count(*) from commands where generation > 0")
        .await;
    assert_eq!(replayed, 3, "exactly the selection was replayed");

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bulk_cancel_of_a_filter_acts_on_the_count_its_dry_run_showed() {
    let app = TestApp::start().await;
    let mut sleeping = Vec::new();
    for _ in 0..6 {
        let body = json!({"type": "demo.sleep", "payload": {"ms": 60000, "steps": 60}});
        sleeping.push(app.submit_ok(body).await);
    }
    let echoed = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2}))
        .await;
    app.wait_status(echoed, "success", T).await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/?type=demo.sleep")).await;
    browser.wait_conn("live").await;
    wait_rows(&browser, "the sleeping commands", &sleeping).await;
    browser
        .choose(r#"[data-testid="bulk-scope"]"#, "filter")
        .await;
    browser.click(r#"[data-testid="bulk-cancel"]"#).await;
    let shown = browser
        .wait_for("the dry-run count", COUNT_OF, vec![json!("bulk-count")])
        .await;
    assert_eq!(shown, json!(6), "every unfinished demo.sleep");
    browser.click(r#"[data-testid="bulk-confirm"]"#).await;
    let done = browser
        .wait_for("the cancel done", COUNT_OF, vec![json!("bulk-done")])
        .await;
    assert_eq!(done, shown, "the count acted on is the count shown");
    for id in &sleeping {
        browser.wait_row_status(*id, "cancelled").await;
    }
    assert_eq!(
        app.get_json(&format!("/v1/commands/{echoed}")).await["status"],
        "success",
        "nothing outside the filter was touched"
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_parked_failure_is_discarded_from_its_page_after_a_confirmation() {
    let app = TestApp::start().await;
    let parked = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(parked, "fail", T).await;
    let browser = Browser::launch(DESKTOP).await;
    browser
        .open_signed_in(&app.url(&format!("/#/commands/{parked}")))
        .await;
    browser
        .wait_for(
            "the discard button",
            r#"return document.querySelector('[data-testid="command-page"] [data-testid="discard"]') !== null;"#,
            vec![],
        )
        .await;
    browser
        .click(r#"[data-testid="command-page"] [data-testid="discard"]"#)
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
            "the page to say discarded",
            r#"return document.querySelector('[data-testid="detail-status"]').textContent === 'discarded'
                 && document.querySelector('[data-testid="command-page"] [data-testid="retry"]') === null;"#,
            vec![],
        )
        .await;
    app.wait_status(parked, "discarded", T).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_command_page_shows_a_waiting_retry_and_keeps_its_timeline_live() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;
    // Fails twice (waiting 1 s, then 5 s), then succeeds.
    let id = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 2}, "max_attempts": 3}))
        .await;
    browser.open(&app.url(&format!("/#/commands/{id}"))).await;
    let waiting = browser
        .wait_for(
            "the wait for the next attempt",
            r#"const next = document.querySelector('[data-testid="next-attempt"]');
               return next && document.querySelector('[data-testid="detail-status"]').textContent === 'queue'
                 && next.textContent;"#,
            vec![],
        )
        .await;
    assert!(
        waiting
            .as_str()
            .is_some_and(|text| text.starts_with("Waiting to retry")),
        "{waiting}"
    );
    let outcomes = browser
        .wait_for(
            "three runs, the last a success",
            r#"const rows = [...document.querySelectorAll('[data-testid="attempt"]')];
               return document.querySelector('[data-testid="detail-status"]').textContent === 'success'
                 && rows.length === 3 && rows.map((r) => r.dataset.outcome);"#,
            vec![],
        )
        .await;
    assert_eq!(outcomes, json!(["retry", "retry", "success"]));
    let line = browser
        .js(
            r#"return document.querySelector('[data-testid="attempt-line"]').textContent;"#,
            vec![],
        )
        .await;
    assert_eq!(line, json!("Attempt 3 of 3"));
    browser.close().await;
    app.stop().await;
}
