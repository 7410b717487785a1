//! The web UI in a real browser: Debian's headless Chromium, driven through chromedriver, against
//! the real app. It proves that a command submitted from the form shows its progress and its
//! outcome without a reload, that the page reconnects and catches up after the server it talks
//! to went away, and that forced polling still delivers the outcome. The console asks for a key
//! (kept in sessionStorage only, never in a URL), shows only the controls the key's scopes allow,
//! and asks again with the server's reason when the key is refused or revoked; a server without
//! authentication shows a warning instead. Each key screen is saved
//! under `target/screenshots/`; with `CMDBUS_UPDATE_SCREENSHOTS=1` under `web/screenshots/`, the
//! committed pictures of the UI (refresh them when the UI changes). `library` tests the browser
//! library `@cmdbus/client` (and its React hooks) from a page of another origin.
//!
//! Waiting is on the page's observable state (a DOM condition polled within a deadline), never
//! on sleeps.
//! `operator`: filters, the command page, selections and bulk actions; `pages`: pause and
//! resume, the overview, a read-only key on every page; `burst`: a 5,000-command burst with the
//! All view open (figures printed); `progress`: a command's progress, reconnects, polling, the
//! failed view; `keys`: what each key sees; `events`: the browser's own `EventSource` on
//! `/v1/events` across a restart; `schedules`: the schedules page, with pause and resume from a
//! row. The browser driver is `tests/common/browser.rs` (input beyond clicks in
//! `browser_input.rs`), its chromedriver
//! `tests/common/chromedriver.rs`.

mod burst;
#[path = "../common/chromedriver.rs"]
mod chromedriver;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/browser.rs"]
mod driver;
#[path = "../common/browser_input.rs"]
mod driver_input;
mod events;
mod keys;
mod library;
mod operator;
mod pages;
mod progress;
mod schedules;

use cmdbus_auth::Scopes;
use common::{TestApp, test_key};
use serde_json::{Value, json};
use tokio::time::Instant;

use driver::*;

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
