//! The web UI in a real browser: Debian's headless Chromium, driven through chromedriver, against
//! the real app. It proves that a command submitted from the form shows its progress and its
//! outcome without a reload, that the page reconnects and catches up after the server it talks
//! to went away, and that forced polling still delivers the outcome. The console asks for a key
//! (kept in sessionStorage only, never in a URL), shows only the controls the key's scopes allow,
//! and asks again with the server's reason when the key is refused or revoked; a server without
//! authentication shows a warning instead. Each key screen is saved
//! under `target/screenshots/`; with `CMDBUS_UPDATE_SCREENSHOTS=1` under `web/screenshots/`, the
//! committed pictures of the UI (refresh them when the UI changes).
//!
//! Waiting is on the page's observable state (a DOM condition polled within a deadline), never
//! on sleeps.

mod common;

use cmdbus_auth::Scopes;
use common::{TestApp, test_key};
use fantoccini::{Client, ClientBuilder, wd::Capabilities};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::Duration,
};
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a quiet, self-contained headless browser (plus a fresh profile and a window size).
const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// How long any one thing the page should do may take.
const T: Duration = Duration::from_secs(30);

/// How often a DOM condition is looked at again while waiting for it.
const POLL: Duration = Duration::from_millis(50);

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

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

    // The detail dialog opens on a click and shows the whole command.
    browser
        .click(&format!(r#"[data-testid="row"][data-id="{id}"]"#))
        .await;
    let detail = browser
        .wait_for(
            "the detail dialog",
            r#"const d = document.querySelector('[data-testid="detail"]');
               return d.open && d.querySelector('[data-testid="detail-status"]').textContent === 'success'
                 ? d.textContent : null;"#,
            vec![],
        )
        .await;
    let detail = detail.as_str().expect("dialog text");
    assert!(detail.contains(&id.to_string()), "full id shown: {detail}");
    assert!(detail.contains("\"steps\": 8"), "payload shown: {detail}");
    browser.screenshot("detail.png").await;

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

    // A command that is running when the server goes away: the graceful stop closes the
    // socket at once but lets the handler finish (well within the grace period), so its
    // success is written after the page lost its socket and before the new instance exists;
    // the page can only learn it by catching up from the database. Its first progress report
    // comes after 0.5 s, which leaves 1.5 s of margin between the socket closing and success.
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
        .unwrap_or_else(|| panic!("the page noticed the lost connection: {log:?}"));
    let success = log
        .iter()
        .position(|entry| *entry == format!("row:{across}:success"))
        .unwrap_or_else(|| panic!("success recorded: {log:?}"));
    assert!(
        lost < success,
        "the success was learned after the connection was lost: {log:?}"
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
               const bulk = document.querySelector('[data-testid="bulk-retry-form"]');
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
    // The form fills the first screen; show the commands, as cards.
    phone
        .js(
            r#"document.querySelector('[data-testid="row"]').closest('section').scrollIntoView();"#,
            vec![],
        )
        .await;
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

    // The Failed view offers no bulk retry, and the detail dialog no retry.
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
            "the detail dialog of the failed command",
            r#"const d = document.querySelector('[data-testid="detail"]');
               return d.open && d.querySelector('[data-testid="detail-status"]').textContent === 'fail';"#,
            vec![],
        )
        .await;
    let controls = browser.controls().await;
    assert_eq!(
        (controls.retry, controls.bulk_retry),
        (0, false),
        "{controls:?}"
    );
    browser.screenshot("read-only.png").await;
    browser.click("#detail-close").await;
    browser
        .wait_for(
            "the dialog to close",
            r#"return !document.querySelector('[data-testid="detail"]').open;"#,
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
            bulk_retry: false,
            no_read: false,
        },
        "an operator without submit gets the cancel button but no form"
    );
    browser
        .click(&format!(
            r#"[data-testid="row"][data-id="{running}"] [data-testid="cancel"]"#
        ))
        .await;
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

/// A key of tenant `default` with `scopes`, recorded in the app's database.
async fn issue_key(app: &TestApp, scopes: &[&str]) -> String {
    let scopes = Scopes::parse(scopes).expect("scopes");
    let (key, _) = cmdbus_auth::issue_key(&app.pool, "default", "browser test", scopes, false)
        .await
        .expect("a key");
    key
}

/// Scope names as the server orders them.
fn names(scopes: &[&str]) -> Vec<String> {
    Scopes::parse(scopes).expect("scopes").names()
}

// ---------------------------------------------------------------------------------------------
// The browser

/// A chromedriver this test started, with Chromium under it in one process group, and a fresh
/// profile directory. Dropping it kills the group, so a test that panics leaves no browser.
struct Chromedriver {
    child: Child,
    profile: PathBuf,
    url: String,
}

impl Chromedriver {
    async fn start() -> Self {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/test.sh, which installs Debian's chromium and \
                 chromium-driver"
            );
        }
        let profile = std::env::temp_dir().join(format!("cmdbus-chromium-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&profile).expect("profile directory");
        // Port 0: chromedriver picks a free port itself and says which, so no other process
        // can take it between our choice and its bind.
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("piped stdout");
        let (announced, port) = oneshot::channel();
        std::thread::spawn(move || read_port(stdout, announced));
        let mut driver = Self {
            child,
            profile,
            url: String::new(),
        };
        let port = tokio::time::timeout(T, port)
            .await
            .expect("chromedriver announced its port in time")
            .expect("chromedriver exited before it announced its port");
        driver.url = format!("http://127.0.0.1:{port}");
        driver.wait_ready().await;
        driver
    }

    /// Polls `/status` until chromedriver says it accepts sessions.
    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/status", self.url)).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return;
            }
            tokio::time::sleep(POLL).await; // polling readiness, not ordering
        }
        panic!("chromedriver at {} never became ready", self.url);
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)); Chromium inherited the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Reads chromedriver's output for "... started successfully on port N." and keeps draining it
/// afterwards, so that a chatty chromedriver never blocks on a full pipe.
fn read_port(stdout: ChildStdout, announced: oneshot::Sender<u16>) {
    let mut announced = Some(announced);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let port = line
            .rsplit_once("started successfully on port ")
            .and_then(|(_, port)| port.trim_end_matches('.').parse::<u16>().ok());
        if let Some(port) = port
            && let Some(sender) = announced.take()
        {
            let _ = sender.send(port);
        }
    }
}

/// A Chromium session.
struct Browser {
    client: Client,
    _driver: Chromedriver,
}

/// What a table row shows.
#[derive(Debug, Deserialize)]
struct Row {
    /// `data-status` of the row.
    status: String,
    /// Text of the status badge.
    badge: String,
    /// `aria-valuenow` of the progress bar, 0–100.
    progress: u32,
    /// Width of the bar's fill, e.g. `"50%"`.
    fill: String,
}

/// Which controls the page offers.
#[derive(Debug, PartialEq, Deserialize)]
struct Controls {
    /// Table rows shown.
    rows: usize,
    /// The submit form is shown.
    submit_form: bool,
    /// Cancel buttons in the page (rows and dialog), shown or not.
    cancel: usize,
    /// Retry buttons in the page (rows and dialog), shown or not.
    retry: usize,
    /// The bulk retry form is shown.
    bulk_retry: bool,
    /// The "this key cannot read" message is shown.
    no_read: bool,
}

const CONTROLS: &str = r#"
    const all = (id) => [...document.querySelectorAll(`[data-testid="${id}"]`)];
    const shown = (id) => all(id).some((el) => el.getClientRects().length > 0);
    return {
      rows: all('row').filter((el) => el.getClientRects().length > 0).length,
      submit_form: shown('submit-form'),
      cancel: all('cancel').length,
      retry: all('retry').length,
      bulk_retry: shown('bulk-retry-form'),
      no_read: shown('no-read'),
    };"#;

/// Sets `row` to the state of the row whose id is `arguments[0]` (null if it is not shown).
const ROW_STATE: &str = r#"
    const el = document.querySelector(`[data-testid="row"][data-id="${arguments[0]}"]`);
    const bar = el && el.querySelector('[data-testid="progress"]');
    const row = el && {
      status: el.dataset.status,
      badge: el.querySelector('[data-testid="status"]').textContent,
      progress: Number(bar.getAttribute('aria-valuenow')),
      fill: bar.firstElementChild.style.width,
    };"#;

/// Records, in order, every text the connection indicator shows and every status a row takes,
/// into `window.__log` (`conn:<state>`, `row:<id>:<status>`). A reload would lose the log.
const RECORD_CHANGES: &str = r#"
    window.__log = [];
    const log = (entry) => window.__log.push(entry);
    const conn = document.querySelector('[data-testid="conn-state"]');
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        if (m.type === 'characterData') log(`conn:${m.target.data}`);
        for (const node of m.addedNodes) log(`conn:${node.textContent}`);
      }
    }).observe(conn, { childList: true, characterData: true, subtree: true });
    const status = (row) => log(`row:${row.dataset.id}:${row.dataset.status}`);
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        if (m.type === 'attributes' && m.target.dataset.testid === 'row') status(m.target);
        for (const node of m.addedNodes) if (node.dataset?.testid === 'row') status(node);
      }
    }).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'],
    });"#;

/// What a person would read on the page, for failure messages.
const PAGE_SUMMARY: &str = r#"
    const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent.trim();
    return {
      url: location.href,
      signed_in: !document.querySelector('#console').hidden,
      identity: text('identity'),
      sign_in_error: text('signin-error'),
      sign_in_status: text('signin-status'),
      conn: text('conn-state'),
      type: document.querySelector('[data-testid="type-select"]').value,
      payload: document.querySelector('[data-testid="payload"]').value,
      payload_error: text('payload-error'),
      form_result: text('form-result'),
      submit_button: text('submit'),
      notice: text('notice'),
      rows: [...document.querySelectorAll('[data-testid="row"]')]
        .map((r) => `${r.dataset.id} ${r.dataset.status}`),
    };"#;

impl Browser {
    /// Chromium with a window (and so a viewport) of `width` x `height` CSS pixels.
    async fn launch((width, height): (u32, u32)) -> Self {
        let driver = Chromedriver::start().await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&flag| flag.to_owned()).collect();
        args.push(format!("--user-data-dir={}", driver.profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let browser = Self {
            client,
            _driver: driver,
        };
        // Headless Chromium still draws room for a (fake) toolbar inside the window: grow the
        // window by that much, so that the page, and so the screenshot, gets the asked size.
        let frame = browser
            .js(
                "return [outerWidth - innerWidth, outerHeight - innerHeight];",
                vec![],
            )
            .await;
        let frame: (u32, u32) = serde_json::from_value(frame).expect("window frame");
        browser
            .client
            .set_window_size(width + frame.0, height + frame.1)
            .await
            .expect("resize the window");
        let viewport = browser
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        assert_eq!(
            viewport,
            json!([width, height]),
            "the viewport has the asked size"
        );
        browser
    }

    /// Ends the session (Chromium quits); the driver is killed on drop.
    async fn close(self) {
        self.client.close().await.expect("end the browser session");
    }

    /// Runs `script` (a function body: use `return` and `arguments[i]`) in the page.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Runs `script` until it returns something other than null, undefined or false, and returns
    /// that; fails after `T`, naming `what` was awaited.
    async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let value = self.js(script, args.clone()).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self.js(PAGE_SUMMARY, vec![]).await;
                panic!("timed out waiting for {what}; the page shows {page:#}");
            }
            tokio::time::sleep(POLL).await; // polling the page's state, not ordering
        }
    }

    /// Loads `url` and waits until the app's script is running.
    async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("load the page");
        self.wait_for("the app script", "return Boolean(window.cmdbus);", vec![])
            .await;
    }

    /// Loads `url` and signs in through the form with the test key (every scope).
    async fn open_signed_in(&self, url: &str) {
        self.open(url).await;
        self.sign_in(&test_key().key).await;
    }

    /// Types `key` into the sign-in form, like a person pasting it, and submits it.
    async fn submit_key(&self, key: &str) {
        self.wait_for(
            "the sign-in form",
            "return !document.querySelector('#signin').hidden;",
            vec![],
        )
        .await;
        let field = self
            .client
            .find(fantoccini::Locator::Css(r#"[data-testid="api-key"]"#))
            .await
            .expect("key field");
        field.clear().await.expect("clear the key field");
        field.send_keys(key).await.expect("type the key");
        self.click(r#"[data-testid="signin-submit"]"#).await;
    }

    /// Signs in with `key` and waits for the console; returns the scopes its header shows.
    async fn sign_in(&self, key: &str) -> Vec<String> {
        self.submit_key(key).await;
        let scopes = self
            .wait_for(
                "the console, signed in",
                r#"return !document.querySelector('#console').hidden
                     && !document.querySelector('[data-testid="identity"]').hidden
                     && [...document.querySelectorAll('[data-testid="who-scopes"] li')]
                          .map((li) => li.textContent);"#,
                vec![],
            )
            .await;
        serde_json::from_value(scopes).expect("scope names")
    }

    /// Waits until the sign-in form shows an error, and returns it.
    async fn wait_sign_in_error(&self) -> String {
        let error = self
            .wait_for(
                "the sign-in form with an error",
                r#"const error = document.querySelector('[data-testid="signin-error"]');
                   return !document.querySelector('#signin').hidden && !error.hidden
                     && error.textContent;"#,
                vec![],
            )
            .await;
        error.as_str().expect("text").to_owned()
    }

    /// The key the page keeps for this tab (null when none).
    async fn stored_key(&self) -> Value {
        self.js("return sessionStorage.getItem('cmdbus.key');", vec![])
            .await
    }

    /// The key is in sessionStorage and nowhere else the page can put it: not in the address
    /// (path, query or fragment), not in localStorage or a cookie, not in the page itself.
    async fn assert_key_only_in_session_storage(&self, key: &str) {
        let url = self.client.current_url().await.expect("current url");
        assert!(!url.as_str().contains(key), "the key is in the URL: {url}");
        assert_eq!(self.stored_key().await, json!(key), "kept for this tab");
        let elsewhere = self
            .js(
                r#"const key = arguments[0];
                   const local = Object.keys(localStorage)
                     .some((k) => k.includes(key) || localStorage.getItem(k).includes(key));
                   return { local, cookie: document.cookie.includes(key),
                            page: document.documentElement.outerHTML.includes(key),
                            field: document.querySelector('[data-testid="api-key"]').value.length > 0,
                            history: history.state !== null && JSON.stringify(history.state).includes(key) };"#,
                vec![json!(key)],
            )
            .await;
        assert_eq!(
            elsewhere,
            json!({"local": false, "cookie": false, "page": false, "field": false, "history": false}),
            "the key is only in sessionStorage"
        );
    }

    /// Which controls the page offers now.
    async fn controls(&self) -> Controls {
        serde_json::from_value(self.js(CONTROLS, vec![]).await).expect("controls")
    }

    async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
            .click()
            .await
            .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    async fn conn_state(&self) -> String {
        let state = self
            .js(
                r#"return document.querySelector('[data-testid="conn-state"]').textContent;"#,
                vec![],
            )
            .await;
        state.as_str().expect("text").to_owned()
    }

    /// Waits until the connection indicator reads exactly `state`.
    async fn wait_conn(&self, state: &str) {
        self.wait_for(
            &format!("conn-state {state}"),
            r#"return document.querySelector('[data-testid="conn-state"]').textContent === arguments[0];"#,
            vec![json!(state)],
        )
        .await;
    }

    /// A marker that only survives if the page is never reloaded.
    async fn mark_page(&self) {
        self.js("window.__marker = 1;", vec![]).await;
    }

    async fn page_is_marked(&self) -> bool {
        self.js("return window.__marker === 1;", vec![]).await == json!(true)
    }

    async fn row(&self, id: Uuid) -> Option<Row> {
        let row = self
            .js(&format!("{ROW_STATE} return row;"), vec![json!(id)])
            .await;
        serde_json::from_value(row).expect("row state")
    }

    /// Waits until the row of `id` is shown with `status`; fails at once if it ends otherwise.
    async fn wait_row_status(&self, id: Uuid, status: &str) -> Row {
        let row = self
            .wait_for(
                &format!("row {id} to show {status}"),
                &format!(
                    "{ROW_STATE} return row && (row.status === arguments[1] || \
                     ['success', 'fail', 'cancelled'].includes(row.status)) && row;"
                ),
                vec![json!(id), json!(status)],
            )
            .await;
        let row: Row = serde_json::from_value(row).expect("row state");
        assert_eq!(row.status, status, "row {id}: {row:?}");
        row
    }

    /// Fills in the submit form like a person would and returns the id of the row it adds.
    async fn submit_form(&self, kind: &str, payload: &str) -> Uuid {
        self.wait_for(
            "the command types",
            r#"return document.querySelector(`[data-testid="type-select"] option[value="${arguments[0]}"]`) !== null;"#,
            vec![json!(kind)],
        )
        .await;
        let shown = self
            .js(
                r#"return [...document.querySelectorAll('[data-testid="row"]')].map((r) => r.dataset.id);"#,
                vec![],
            )
            .await;
        let find = |css| self.client.find(fantoccini::Locator::Css(css));
        find(r#"[data-testid="type-select"]"#)
            .await
            .expect("type select")
            .select_by_value(kind)
            .await
            .expect("choose the type");
        // Choosing a type fills in its example payload; replace it.
        let field = find(r#"[data-testid="payload"]"#).await.expect("payload");
        field.clear().await.expect("clear the payload");
        field.send_keys(payload).await.expect("type the payload");
        self.click(r#"[data-testid="submit"]"#).await;
        let id = self
            .wait_for(
                "the submitted command's row",
                r#"const shown = new Set(arguments[0]);
                   const rows = [...document.querySelectorAll('[data-testid="row"]')];
                   return rows.find((r) => !shown.has(r.dataset.id))?.dataset.id ?? null;"#,
                vec![shown],
            )
            .await;
        Uuid::parse_str(id.as_str().expect("an id")).expect("a command id")
    }

    /// Saves what the viewport shows as `<screenshots>/<name>`, once the screen is still: a
    /// dialog caught while it fades in would look broken.
    async fn screenshot(&self, name: &str) {
        self.wait_for(
            "finite animations and transitions to end",
            r#"return document.getAnimations().every((a) =>
                 a.playState !== 'running' || a.effect.getComputedTiming().iterations === Infinity);"#,
            vec![],
        )
        .await;
        let png = self.client.screenshot().await.expect("screenshot");
        // Every run makes new pictures (ids and times differ): only refresh the committed ones
        // when asked, so that a test run leaves the work tree clean.
        let dir = if std::env::var_os("CMDBUS_UPDATE_SCREENSHOTS").is_some() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/screenshots")
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
        };
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(name), png).expect("write the screenshot");
    }
}

/// The distinct progress values strictly between 0 and 100 among `samples`.
fn partial_values(samples: &[u32]) -> Vec<u32> {
    let mut values: Vec<u32> = samples
        .iter()
        .copied()
        .filter(|p| (1..100).contains(p))
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "success" | "fail" | "cancelled")
}
