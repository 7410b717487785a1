//! What each key sees: a read-only key, a key with operate, a wrong or revoked key, where the key is
//! kept, and a server without authentication.

use super::*;

#[tokio::test]
async fn a_read_only_key_sees_commands_but_no_submit_or_operate_controls() {
    let app = TestApp::start().await;
    let reader = issue_key(&app, &["read"]).await;
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    app.wait_status(failed, "fail", T).await;
    // Cancellable the whole time the page is looked at.
    let running = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 60000, "steps": 60}}))
        .await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;
    assert_eq!(browser.sign_in(&reader).await, names(&["read"]));
    browser.wait_conn("live").await;
    browser.wait_row_status(failed, "fail").await;
    browser.wait_row_status(running, "running").await;
    assert_eq!(
        browser.controls().await,
        Controls {
            rows: 2,
            submit_form: false,
            cancel: 0,
            retry: 0,
            bulk_retry: false,
            no_read: false,
        },
        "a reader sees the commands and nothing that changes them"
    );

    // The Failed view offers no bulk actions, and the command page no retry.
    browser.click(r#"[data-testid="view-failed"]"#).await;
    browser
        .wait_for(
            "only the failed row",
            r#"const rows = [...document.querySelectorAll('[data-testid="row"]')];
               return rows.length === 1 && rows[0].dataset.id === arguments[0];"#,
            vec![json!(failed)],
        )
        .await;
    browser
        .click(&format!(r#"[data-testid="row"][data-id="{failed}"]"#))
        .await;
    browser
        .wait_for(
            "the command page of the failed command",
            r#"const d = document.querySelector('[data-testid="command-page"]');
               return !d.hidden && d.querySelector('[data-testid="detail-status"]').textContent === 'fail'
                 && d.querySelector('[data-testid="attempts"]') !== null;"#,
            vec![],
        )
        .await;
    let controls = browser.controls().await;
    assert_eq!(
        (controls.retry, controls.bulk_retry),
        (0, false),
        "{controls:?}"
    );
    let discard = browser
        .js(
            r#"return [...document.querySelectorAll('[data-testid="discard"], [data-testid="select"]')]
                 .filter((el) => el.getClientRects().length > 0).length;"#,
            vec![],
        )
        .await;
    assert_eq!(
        discard,
        json!(0),
        "no discard and no selection for a reader"
    );
    browser.screenshot("read-only.png").await;
    browser.click(r#"[data-testid="command-back"]"#).await;
    browser
        .wait_for(
            "the list again",
            r#"return document.querySelector('[data-testid="command-page"]').hidden
                 && !document.querySelector('#page-commands').hidden;"#,
            vec![],
        )
        .await;

    // The reader still watches what others do: a cancel made elsewhere reaches the page.
    assert_eq!(
        app.post(&format!("/v1/commands/{running}/cancel"))
            .await
            .status(),
        202
    );
    browser.click(r#"[data-testid="view-all"]"#).await;
    browser.wait_row_status(running, "cancelled").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_key_with_operate_sees_the_cancel_button_and_cancelling_works() {
    let app = TestApp::start().await;
    let operator = issue_key(&app, &["read", "operate"]).await;
    let running = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 60000, "steps": 60}}))
        .await;

    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;
    assert_eq!(
        browser.sign_in(&operator).await,
        names(&["read", "operate"])
    );
    browser.wait_conn("live").await;
    browser.wait_row_status(running, "running").await;
    assert_eq!(
        browser.controls().await,
        Controls {
            rows: 1,
            submit_form: false,
            cancel: 1,
            retry: 0,
            bulk_retry: true,
            no_read: false,
        },
        "an operator without submit gets the cancel button and the bulk actions, but no form"
    );
    browser
        .click(&format!(
            r#"[data-testid="row"][data-id="{running}"] [data-testid="cancel"]"#
        ))
        .await;
    // A running command is cancelled only after a confirmation.
    browser
        .wait_for(
            "the confirmation",
            r#"return document.querySelector('[data-testid="confirm"]').open;"#,
            vec![],
        )
        .await;
    assert_eq!(
        browser.row(running).await.map(|r| r.status),
        Some("running".to_owned())
    );
    browser.click(r#"[data-testid="confirm-yes"]"#).await;
    browser.wait_row_status(running, "cancelled").await;
    app.wait_status(running, "cancelled", T).await;
    assert_eq!(browser.controls().await.cancel, 0, "nothing left to cancel");

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_or_revoked_key_gets_the_form_again_with_the_servers_reason() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;

    // A well-formed key the server never issued.
    let stranger = cmdbus_auth::generate_key().expect("randomness").key;
    browser.submit_key(&stranger).await;
    let refusal = browser.wait_sign_in_error().await;
    assert!(
        refusal.contains("unknown or revoked API key"),
        "the server's reason is shown: {refusal}"
    );
    assert_eq!(
        browser.stored_key().await,
        Value::Null,
        "a refused key is not kept"
    );
    browser.screenshot("sign-in.png").await;

    // A good key, revoked while the page uses it: the socket closes with 4401 and the form
    // comes back with why.
    let (key, record) = cmdbus_auth::issue_key(
        &app.pool,
        "default",
        "doomed",
        Scopes::parse(&["read", "submit"]).expect("scopes"),
        false,
    )
    .await
    .expect("a key");
    browser.sign_in(&key).await;
    browser.wait_conn("live").await;
    assert_eq!(browser.stored_key().await, json!(key));
    cmdbus_store::revoke_key(&app.pool, None, record.id)
        .await
        .expect("revoke")
        .expect("the key was live");
    let reason = browser.wait_sign_in_error().await;
    assert!(reason.contains("revoked"), "the server's reason: {reason}");
    assert_eq!(
        browser.stored_key().await,
        Value::Null,
        "the key is forgotten"
    );
    let console = browser
        .js(
            r#"return { hidden: document.querySelector('#console').hidden,
                        rows: document.querySelectorAll('[data-testid="row"]').length };"#,
            vec![],
        )
        .await;
    assert_eq!(
        console,
        json!({"hidden": true, "rows": 0}),
        "nothing of it stays"
    );

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_key_is_kept_in_session_storage_only_and_never_in_the_url() {
    let app = TestApp::start().await;
    let key = &test_key().key;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/?type=demo.echo")).await;
    browser.wait_conn("live").await;
    // The filter changes the address; the key must not get into it.
    browser.click(r#"[data-testid="view-failed"]"#).await;
    browser
        .wait_for(
            "the Failed view in the address",
            "return location.search.includes('status=fail');",
            vec![],
        )
        .await;
    browser.assert_key_only_in_session_storage(key).await;

    // A reload keeps the tab signed in, from sessionStorage.
    browser.open(&app.url("/")).await;
    browser
        .wait_for(
            "the console, without the form",
            r#"return !document.querySelector('#console').hidden
                 && document.querySelector('#signin').hidden;"#,
            vec![],
        )
        .await;
    browser.wait_conn("live").await;
    browser.assert_key_only_in_session_storage(key).await;

    // Sign out forgets it.
    browser.click(r#"[data-testid="sign-out"]"#).await;
    browser
        .wait_for(
            "the sign-in form",
            "return !document.querySelector('#signin').hidden;",
            vec![],
        )
        .await;
    assert_eq!(browser.stored_key().await, Value::Null);
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_server_without_authentication_says_so_loudly_and_asks_for_no_key() {
    let app = TestApp::start_tweaked(|config| config.auth.open = true).await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open(&app.url("/")).await;
    browser.wait_conn("live").await;
    let page = browser
        .js(
            r#"const shown = (id) => document.querySelector(`[data-testid="${id}"]`).getClientRects().length > 0;
               return { banner: shown('open-banner'), sign_in: shown('signin-form'),
                        sign_out: shown('sign-out'),
                        text: document.querySelector('[data-testid="open-banner"]').textContent };"#,
            vec![],
        )
        .await;
    assert_eq!(page["banner"], true, "{page}");
    assert_eq!(page["sign_in"], false, "no key is asked for: {page}");
    assert_eq!(page["sign_out"], false, "nothing to sign out of: {page}");
    assert!(
        page["text"]
            .as_str()
            .is_some_and(|text| text.contains("without authentication")),
        "{page}"
    );
    let id = browser.submit_form("demo.echo", r#"{"open": true}"#).await;
    browser.wait_row_status(id, "success").await;
    browser.screenshot("open-server.png").await;

    browser.close().await;
    app.stop().await;
}
