//! The browser driver of the browser tests: a `Browser` (a session of Debian's headless Chromium
//! under `chromedriver.rs`) that signs in, submits, reads rows and controls, and waits on the page.

#![allow(dead_code)] // the browser tests use their own parts of it

use crate::chromedriver::{CHROMIUM, CHROMIUM_FLAGS, Chromedriver};

use crate::common::test_key;
use fantoccini::{Client, ClientBuilder, wd::Capabilities};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use std::{path::Path, time::Duration};
use tokio::time::Instant;
use uuid::Uuid;

/// How long any one thing the page should do may take.
pub(crate) const T: Duration = Duration::from_secs(30);

/// How often a DOM condition is looked at again while waiting for it.
pub(crate) const POLL: Duration = Duration::from_millis(50);

pub(crate) const DESKTOP: (u32, u32) = (1280, 900);
pub(crate) const PHONE: (u32, u32) = (390, 844);

// ---------------------------------------------------------------------------------------------
// The browser

/// A Chromium session.
pub(crate) struct Browser {
    pub(crate) client: Client,
    pub(crate) _driver: Chromedriver,
}

/// What a table row shows.
#[derive(Debug, Deserialize)]
pub(crate) struct Row {
    /// `data-status` of the row.
    pub(crate) status: String,
    /// Text of the status badge.
    pub(crate) badge: String,
    /// `aria-valuenow` of the progress bar, 0–100.
    pub(crate) progress: u32,
    /// Width of the bar's fill, e.g. `"50%"`.
    pub(crate) fill: String,
}

/// Which controls the page offers.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Controls {
    /// Table rows shown.
    pub(crate) rows: usize,
    /// The submit form is shown.
    pub(crate) submit_form: bool,
    /// Cancel buttons in the page (rows and command page), shown or not.
    pub(crate) cancel: usize,
    /// Retry buttons in the page (rows and command page), shown or not.
    pub(crate) retry: usize,
    /// The bulk action bar is shown.
    pub(crate) bulk_retry: bool,
    /// The "this key cannot read" message is shown.
    pub(crate) no_read: bool,
}

pub(crate) const CONTROLS: &str = r#"
    const all = (id) => [...document.querySelectorAll(`[data-testid="${id}"]`)];
    const shown = (id) => all(id).some((el) => el.getClientRects().length > 0);
    return {
      rows: all('row').filter((el) => el.getClientRects().length > 0).length,
      submit_form: shown('submit-form'),
      cancel: all('cancel').length,
      retry: all('retry').length,
      bulk_retry: shown('bulk'),
      no_read: shown('no-read'),
    };"#;

/// Sets `row` to the state of the row whose id is `arguments[0]` (null if it is not shown).
pub(crate) const ROW_STATE: &str = r#"
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
pub(crate) const RECORD_CHANGES: &str = r#"
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
pub(crate) const PAGE_SUMMARY: &str = r#"
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
    pub(crate) async fn launch(size: (u32, u32)) -> Self {
        Self::launch_with(size, &[]).await
    }

    /// Chromium in dark mode (`prefers-color-scheme: dark`), for the dark screenshots.
    pub(crate) async fn launch_dark(size: (u32, u32)) -> Self {
        Self::launch_with(size, &["--force-dark-mode"]).await
    }

    async fn launch_with((width, height): (u32, u32), extra: &[&str]) -> Self {
        let driver = Chromedriver::start().await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&flag| flag.to_owned()).collect();
        args.extend(extra.iter().map(|&flag| flag.to_owned()));
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
    pub(crate) async fn close(self) {
        self.client.close().await.expect("end the browser session");
    }

    /// Runs `script` (a function body: use `return` and `arguments[i]`) in the page.
    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Runs `script` until it returns something other than null, undefined or false, and returns
    /// that; fails after `T`, naming `what` was awaited.
    pub(crate) async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
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
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("load the page");
        self.wait_for("the app script", "return Boolean(window.cmdbus);", vec![])
            .await;
    }

    /// Loads `url` and signs in through the form with the test key (every scope).
    pub(crate) async fn open_signed_in(&self, url: &str) {
        self.open(url).await;
        self.sign_in(&test_key().key).await;
    }

    /// Types `key` into the sign-in form, like a person pasting it, and submits it.
    pub(crate) async fn submit_key(&self, key: &str) {
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
    pub(crate) async fn sign_in(&self, key: &str) -> Vec<String> {
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
    pub(crate) async fn wait_sign_in_error(&self) -> String {
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
    pub(crate) async fn stored_key(&self) -> Value {
        self.js("return sessionStorage.getItem('cmdbus.key');", vec![])
            .await
    }

    /// The key is in sessionStorage and nowhere else the page can put it: not in the address
    /// (path, query or fragment), not in localStorage or a cookie, not in the page itself.
    pub(crate) async fn assert_key_only_in_session_storage(&self, key: &str) {
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
    pub(crate) async fn controls(&self) -> Controls {
        serde_json::from_value(self.js(CONTROLS, vec![]).await).expect("controls")
    }

    /// Clicks the element `css` names. A live page may re-render between finding the element
    /// and clicking it (an event arrives, a list reloads); a user would click the new one, so
    /// a stale element is found again, a few times at most.
    pub(crate) async fn click(&self, css: &str) {
        const TRIES: usize = 5;
        for tries_left in (0..TRIES).rev() {
            let element = self
                .client
                .find(fantoccini::Locator::Css(css))
                .await
                .unwrap_or_else(|error| panic!("no {css}: {error}"));
            match element.click().await {
                Ok(_) => return,
                Err(fantoccini::error::CmdError::Standard(error))
                    if error.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && tries_left > 0 => {}
                Err(error) => panic!("click {css}: {error}"),
            }
        }
    }

    pub(crate) async fn conn_state(&self) -> String {
        let state = self
            .js(
                r#"return document.querySelector('[data-testid="conn-state"]').textContent;"#,
                vec![],
            )
            .await;
        state.as_str().expect("text").to_owned()
    }

    /// Waits until the connection indicator reads exactly `state`.
    pub(crate) async fn wait_conn(&self, state: &str) {
        self.wait_for(
            &format!("conn-state {state}"),
            r#"return document.querySelector('[data-testid="conn-state"]').textContent === arguments[0];"#,
            vec![json!(state)],
        )
        .await;
    }

    /// A marker that only survives if the page is never reloaded.
    pub(crate) async fn mark_page(&self) {
        self.js("window.__marker = 1;", vec![]).await;
    }

    pub(crate) async fn page_is_marked(&self) -> bool {
        self.js("return window.__marker === 1;", vec![]).await == json!(true)
    }

    pub(crate) async fn row(&self, id: Uuid) -> Option<Row> {
        let row = self
            .js(&format!("{ROW_STATE} return row;"), vec![json!(id)])
            .await;
        serde_json::from_value(row).expect("row state")
    }

    /// Waits until the row of `id` is shown with `status`; fails at once if it ends otherwise.
    pub(crate) async fn wait_row_status(&self, id: Uuid, status: &str) -> Row {
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
    pub(crate) async fn submit_form(&self, kind: &str, payload: &str) -> Uuid {
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
    pub(crate) async fn screenshot(&self, name: &str) {
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
pub(crate) fn partial_values(samples: &[u32]) -> Vec<u32> {
    let mut values: Vec<u32> = samples
        .iter()
        .copied()
        .filter(|p| (1..100).contains(p))
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "success" | "fail" | "cancelled")
}
