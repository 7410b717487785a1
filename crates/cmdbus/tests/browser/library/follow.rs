//! Following commands from the page: the plain case, submits with an idempotency key and
//! `watchMany`, many watches on one connection, a stored cursor the server refuses, a reload; the
//! version rule's bound.

use super::*;

#[tokio::test]
async fn a_page_of_another_origin_follows_a_command_to_the_database_s_final_view() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &page.base).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 1500, "steps": 3})).await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    assert!(
        views.iter().any(|v| v["status"] == "running"),
        "progress was shown on the way: {views:?}"
    );
    assert_eq!(
        states(&browser).await.first().map(String::as_str),
        Some("live")
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_library_submits_once_per_idempotency_key_and_follows_many_commands() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &page.base).await;
    let outcome = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               (async () => {
                 const first = await bus.submit('demo.echo', 1, { idempotencyKey: 'once' });
                 const again = await bus.submit('demo.echo', 1, { idempotencyKey: 'once' });
                 const other = await bus.submit('demo.sleep', { ms: 500, steps: 2 });
                 const ids = [first.id, other.id];
                 const seen = {};
                 await new Promise((resolve) => {
                   bus.watchMany({ ids }, (view) => {
                     (seen[view.id] ||= []).push(view.version);
                     if (['success', 'fail', 'cancelled'].includes(view.status)) seen[view.id].end = view.status;
                     if (ids.every((id) => seen[id]?.end)) resolve();
                   });
                 });
                 const failed = await bus.submit('demo.fail', { permanent: true });
                 const plain = await bus.watch(failed.id).done();
                 const strict = await bus.watch(failed.id).done({ rejectOnFailure: true })
                   .then((view) => `resolved ${view.status}`, (e) => `${e.name} ${e.view.status}`);
                 return { same: first.id === again.id, ids, plain: plain.status, strict,
                          ends: ids.map((id) => seen[id].end),
                          ordered: ids.every((id) => seen[id].every((v, i, a) => i === 0 || a[i - 1] < v)) };
               })().then(done, (e) => done({ error: String(e) }));"#,
            vec![],
        )
        .await
        .expect("the page's script");
    assert_eq!(outcome["same"], json!(true), "{outcome}");
    assert_eq!(outcome["ends"], json!(["success", "success"]), "{outcome}");
    assert_eq!(outcome["ordered"], json!(true), "{outcome}");
    assert_eq!(
        outcome["plain"],
        json!("fail"),
        "done() resolves with a failure"
    );
    assert_eq!(
        outcome["strict"],
        json!("CommandFailed fail"),
        "done({{ rejectOnFailure: true }}) rejects with it"
    );
    let count = app.count("select count(*) from commands").await;
    assert_eq!(count, 3, "one command per idempotency key");
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn many_watches_share_one_connection() {
    let (app, page, browser) = app_and_page(None).await;
    // Over event streams: a browser opens at most six HTTP/1.1 connections to one server, so
    // twelve watches with a stream each would leave the last ones with nothing until others end.
    open_page(&browser, &format!("{}/?block=WebSocket", page.base)).await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        let id = app
            .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 4000, "steps": 4}, "subject": SUBJECT}))
            .await;
        ids.push(json!(id));
    }
    browser
        .js(
            "window.watches = arguments[0].map((id) => bus.watch(id));
             window.ends = [];
             window.watches.forEach((w) => w.done().then((view) => window.ends.push(view.status)));",
            vec![json!(ids)],
        )
        .await;
    // Every watch holds a view before any command ends (one waiting for a connection slot
    // would hold nothing until others ended).
    let early = wait_page(
        &browser,
        "a view in every watch",
        "return window.watches.every((w) => w.current) && window.watches.map((w) => w.current.status);",
        vec![],
    )
    .await;
    let early = early.as_array().expect("statuses");
    assert!(
        early
            .iter()
            .all(|status| !is_terminal(status.as_str().unwrap_or_default())),
        "every watch was live before any command ended: {early:?}"
    );
    let ends = wait_page(
        &browser,
        "every command's end",
        "return window.ends.length === 12 && window.ends;",
        vec![],
    )
    .await;
    assert_eq!(ends, json!(vec!["success"; 12]));
    assert!(!states(&browser).await.contains(&"polling".to_owned()));
    browser.close().await;
    app.stop().await;
}

/// A page whose stored cursor the server cannot read (`transports` narrowed to `only`) starts
/// from now, reads the command it follows, and stores a good cursor.
async fn a_bad_stored_cursor_is_replaced(only: &str) {
    let (app, page, browser) = app_and_page(None).await;
    let id = app
        .submit_ok(
            json!({"type": "demo.sleep", "payload": {"ms": 1500, "steps": 3}, "subject": SUBJECT}),
        )
        .await;
    // The page's origin holds the broken cursor before the library starts.
    open_page(&browser, &format!("{}/?transports={only}", page.base)).await;
    browser
        .js(
            "sessionStorage.clear();
             sessionStorage.setItem(`cmdbus.cursor ${arguments[0]} watch`, 'not-a-cursor');
             sessionStorage.setItem('following', arguments[1]);",
            vec![json!(app.base), json!(id)],
        )
        .await;
    browser.client.refresh().await.expect("reload");
    wait_page(
        &browser,
        "the reloaded page",
        "return window.ready === true;",
        vec![],
    )
    .await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    let stored = wait_page(
        &browser,
        "a good cursor stored",
        "const c = sessionStorage.getItem(`cmdbus.cursor ${arguments[0]} watch`);
         return c !== 'not-a-cursor' && c;",
        vec![json!(app.base)],
    )
    .await;
    assert!(stored.as_str().is_some_and(|c| c.contains(':')), "{stored}");
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_stored_cursor_is_replaced_on_the_websocket() {
    a_bad_stored_cursor_is_replaced("websocket").await;
}

#[tokio::test]
async fn a_bad_stored_cursor_is_replaced_on_the_change_feed() {
    a_bad_stored_cursor_is_replaced("feed").await;
}

#[tokio::test]
async fn a_reload_mid_run_resumes_from_the_stored_cursor() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &page.base).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 4000, "steps": 8})).await;
    let cursor = wait_page(
        &browser,
        "a cursor kept for the command",
        "return window.views.some((v) => v.status === 'running')
           && Object.keys(sessionStorage).find((k) => k.startsWith('cmdbus.cursor '));",
        vec![],
    )
    .await;
    browser.client.refresh().await.expect("reload");
    wait_page(
        &browser,
        "the reloaded page",
        "return window.ready === true;",
        vec![],
    )
    .await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    assert!(cursor.is_string(), "{cursor}");
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_version_rule_holds_at_most_its_limit_the_latest_changed_kept() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &page.base).await;
    let held = browser
        .js(
            r#"return import(arguments[0]).then(({ Versions }) => {
                 const rule = new Versions(3);
                 const view = (id, version) => ({ id, version, status: 'running' });
                 const taken = [rule.offer(view('a', 1)), rule.offer(view('b', 1)),
                   rule.offer(view('c', 1)), rule.offer(view('a', 2)), rule.offer(view('d', 1)),
                   rule.offer(view('a', 1))].map((v) => v && `${v.id}${v.version}`);
                 const kept = ['a', 'b', 'c', 'd'].map((id) => rule.get(id)?.version ?? null);
                 const unbounded = new Versions();
                 for (let i = 0; i < 50; i++) unbounded.offer(view(`x${i}`, 1));
                 return { taken, kept, unbounded: unbounded.get('x0')?.version ?? null };
               });"#,
            vec![json!(format!("{}/v1/client.js", app.base))],
        )
        .await;
    // b, changed longest ago, went when d came; a, changed again, stayed; an older a is refused.
    assert_eq!(
        held,
        json!({
            "taken": ["a1", "b1", "c1", "a2", "d1", null],
            "kept": [2, null, 1, 1],
            "unbounded": 1,
        })
    );
    browser.close().await;
    app.stop().await;
}
