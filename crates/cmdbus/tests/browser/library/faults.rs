//! What the page goes through and still ends with the database's view: a kill and restart of
//! the server, tokens that expire (and a token function that fails for a while), and browser
//! APIs that cannot connect (the WebSocket, then the event stream too).

use super::*;

#[tokio::test]
async fn the_page_ends_with_the_database_s_view_across_a_kill_and_restart_of_the_server() {
    let env = common::Env::new();
    env.authorize().await;
    let (listener, origin) = PageServer::bind().await;
    let port = free_port();
    let bus = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let vars = [
        ("CMDBUS_LISTEN", listen.as_str()),
        ("CMDBUS_ALLOWED_ORIGINS", origin.as_str()),
    ];
    let mut server = Proc::spawn(&env, "all", &vars);
    common::wait_ready(&reqwest::Client::new(), &bus).await;
    let page = PageServer::serve(
        listener,
        &bus,
        &format!("{bus}/v1/client.js"),
        HashMap::new(),
    );
    let browser = Browser::launch(DESKTOP).await;
    open_page(&browser, &page.base).await;

    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 4000, "steps": 8})).await;
    wait_page(
        &browser,
        "the command running",
        "return window.views.some((v) => v.status === 'running');",
        vec![],
    )
    .await;
    server.kill();
    let _restarted = Proc::spawn(&env, "all", &vars);
    common::wait_ready(&reqwest::Client::new(), &bus).await;
    let views = final_view_is_the_database_s(&browser, &bus, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    assert!(states(&browser).await.contains(&"reconnecting".to_owned()));
    browser.close().await;
    drop(page);
    drop(_restarted);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn tokens_that_expire_while_it_runs_are_asked_for_again() {
    let (app, page, browser) = app_and_page(None).await;
    // Tokens of 4 s: renewed halfway, over a run of 10 s.
    open_page(&browser, &format!("{}/?ttl=4", page.base)).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 10000, "steps": 10})).await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    let tokens = browser.js("return window.tokens;", vec![]).await;
    assert!(
        tokens.as_i64().unwrap_or_default() >= 3,
        "renewed: {tokens}"
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_token_function_that_fails_for_a_while_is_asked_again_until_it_answers() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &format!("{}/?ttl=3", page.base)).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 8000, "steps": 8})).await;
    wait_page(
        &browser,
        "the command running",
        "return window.views.some((v) => v.status === 'running');",
        vec![],
    )
    .await;
    // The backend cannot mint: the token expires, the socket is closed with 4401, and the
    // library keeps asking (with backoff) instead of giving up or signing out.
    page.tokens_fail.store(true, Ordering::SeqCst);
    let asked = browser.js("return window.tokens;", vec![]).await;
    wait_page(
        &browser,
        "the client to lose its connection and ask again",
        "return window.states.includes('reconnecting') && window.tokens >= arguments[0] + 2;",
        vec![asked],
    )
    .await;
    page.tokens_fail.store(false, Ordering::SeqCst);
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    assert_eq!(
        states(&browser).await.last().map(String::as_str),
        Some("live")
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn over_server_sent_events_an_expiring_token_is_asked_for_again() {
    let (app, page, browser) = app_and_page(None).await;
    // The event stream ends at each token's expiry; the library reconnects with a fresh one.
    open_page(&browser, &format!("{}/?ttl=4&block=WebSocket", page.base)).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 10000, "steps": 10})).await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    let tokens = browser.js("return window.tokens;", vec![]).await;
    assert!(
        tokens.as_i64().unwrap_or_default() >= 3,
        "renewed: {tokens}"
    );
    assert!(
        !states(&browser).await.contains(&"polling".to_owned()),
        "it stayed on the event stream"
    );
    browser.close().await;
    app.stop().await;
}

/// Follows a command from a page whose browser APIs in `block` fail to connect, and returns the
/// states the client went through.
async fn follow_blocked(block: &str) -> Vec<String> {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &format!("{}/?block={block}", page.base)).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 1500, "steps": 3})).await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    let seen = states(&browser).await;
    browser.close().await;
    app.stop().await;
    seen
}

#[tokio::test]
async fn with_the_websocket_blocked_it_follows_over_server_sent_events() {
    let states = follow_blocked("WebSocket").await;
    assert_eq!(states, ["live"], "{states:?}");
}

#[tokio::test]
async fn with_the_websocket_and_events_blocked_it_follows_the_change_feed() {
    let states = follow_blocked("WebSocket,EventSource").await;
    assert_eq!(states, ["polling"], "{states:?}");
}

#[tokio::test]
async fn a_page_can_choose_its_transports() {
    let (app, page, browser) = app_and_page(None).await;
    open_page(&browser, &format!("{}/?transports=feed", page.base)).await;
    let id = submit_from_page(&browser, "demo.echo", json!("polled")).await;
    final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(states(&browser).await, ["polling"]);
    browser.close().await;
    app.stop().await;
}
