//! The browser library `@cmdbus/client` as a front end uses it: a page served from ANOTHER origin
//! (a small axum server of the test, with a backend that holds the key, mints browser tokens and
//! submits) imports it from `<cmdbus>/v1/client.js`, follows a command to its end, and shows
//! what PostgreSQL holds: plainly, across a kill and restart of the server, with the WebSocket
//! left out (event stream) and with both left out (change feed), with tokens that expire while it
//! runs, and across a reload of the page. Also: the files as the server serves them, and the
//! packed npm package installed into a page.
//!
//! This file is the harness (the page, its server and backend, waits on the page); the tests are
//! in `follow.rs`, `faults.rs` and `files.rs`.

mod faults;
mod files;
mod follow;

use super::*;
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse},
    routing::{get, post},
};
use common::process::{Proc, free_port};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use uuid::Uuid;

/// The end user the page's backend submits for and mints tokens for.
const SUBJECT: &str = "alice";

fn library_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js")
}

/// The page: imports the library from the cmdbus server (or `module`, a path of the page's own
/// origin), follows what it submits through its backend, and records what it sees in `window`.
/// `?block=WebSocket` makes that API fail to connect; `?transports=sse,feed` narrows the
/// library's transports; `?ttl=N` asks for tokens of N s (they may read and submit).
fn page(module: &str, bus: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>a front end</title>
<script type="module">
import {{ createClient }} from '{module}';
const params = new URLSearchParams(location.search);
// `?block=WebSocket,EventSource`: as behind a proxy that refuses them, each fails to connect.
const failing = (event) => class extends EventTarget {{
  constructor() {{ super(); setTimeout(() => this.dispatchEvent(new Event(event)), 10); }}
  close() {{}}
  send() {{}}
}};
for (const name of params.get('block')?.split(',') ?? []) {{
  window[name] = failing(name === 'WebSocket' ? 'close' : 'error');
}}
window.tokens = 0;
window.views = [];
window.states = [];
const bus = createClient({{
  url: '{bus}',
  token: async () => {{
    window.tokens += 1;
    const res = await fetch('/token' + location.search);
    if (!res.ok) throw new Error('no token');
    return res.text();
  }},
  transports: params.get('transports')?.split(','),
}});
window.bus = bus;
bus.onState((state) => window.states.push(state));
window.follow = (id) => {{
  const cmd = bus.watch(id);
  cmd.subscribe((view) => window.views.push(view));
  cmd.done().then((view) => {{ window.final = view; }});
}};
window.submit = async (type, payload) => {{
  const res = await fetch('/submit', {{ method: 'POST', body: JSON.stringify({{ type, payload }}) }});
  const view = await res.json();
  sessionStorage.setItem('following', view.id);
  window.follow(view.id);
  return view.id;
}};
const following = sessionStorage.getItem('following');
if (following) window.follow(following);
window.ready = true;
</script>"#
    )
}

/// The page's own server: `/` the page, `/token` a browser token for [`SUBJECT`] minted with the
/// app's key, `/submit` a submit for [`SUBJECT`] with the key, `/files/*` the page's own files.
struct PageServer {
    base: String,
    task: tokio::task::JoinHandle<()>,
    /// While set, `/token` answers 503: the application's token function fails.
    tokens_fail: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Backend {
    bus: String,
    html: Arc<String>,
    files: Arc<HashMap<String, String>>,
    http: reqwest::Client,
    tokens_fail: Arc<AtomicBool>,
}

impl PageServer {
    /// Binds first, so that the app can be told the page's origin before it starts.
    async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the page server");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        (listener, origin)
    }

    /// Serves the page for the cmdbus server at `bus`, importing the library from `module`.
    fn serve(
        listener: tokio::net::TcpListener,
        bus: &str,
        module: &str,
        files: HashMap<String, String>,
    ) -> Self {
        Self::serve_html(listener, bus, page(module, bus), files)
    }

    /// Serves `html` as the page, with the backend for the cmdbus server at `bus`.
    fn serve_html(
        listener: tokio::net::TcpListener,
        bus: &str,
        html: String,
        files: HashMap<String, String>,
    ) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let tokens_fail = Arc::new(AtomicBool::new(false));
        let backend = Backend {
            tokens_fail: tokens_fail.clone(),
            bus: bus.to_owned(),
            html: Arc::new(html),
            files: Arc::new(files),
            http: common::http_client(),
        };
        let router = Router::new()
            .route(
                "/",
                get(|State(b): State<Backend>| async move { Html((*b.html).clone()) }),
            )
            .route("/token", get(mint))
            .route("/submit", post(submit))
            // The README page's backend.
            .route("/api/cmdbus-token", get(mint))
            .route("/api/reports", post(report))
            .route("/files/{*path}", get(file))
            .with_state(backend);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("page server");
        });
        Self {
            base,
            task,
            tokens_fail,
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mint(
    State(backend): State<Backend>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if backend.tokens_fail.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let ttl: u64 = query
        .get("ttl")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or(600);
    let answer = backend
        .http
        .post(format!("{}/v1/tokens", backend.bus))
        .json(&json!({"sub": SUBJECT, "ttl_secs": ttl, "scopes": ["read", "submit"]}))
        .send()
        .await;
    match answer {
        Ok(res) if res.status() == StatusCode::CREATED => {
            let minted: Value = res.json().await.unwrap_or_default();
            let token = minted["token"].as_str().unwrap_or_default().to_owned();
            (StatusCode::OK, token).into_response()
        }
        _ => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn submit(State(backend): State<Backend>, body: String) -> impl IntoResponse {
    let mut command: Value = serde_json::from_str(&body).unwrap_or_default();
    command["subject"] = json!(SUBJECT);
    let answer = backend
        .http
        .post(format!("{}/v1/commands", backend.bus))
        .json(&command)
        .send()
        .await;
    match answer {
        Ok(res) => {
            let status = res.status();
            let view: Value = res.json().await.unwrap_or_default();
            (status, Json(view)).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// The README page's "start a report": a `demo.sleep` for [`SUBJECT`].
async fn report(state: State<Backend>) -> impl IntoResponse {
    let command = json!({"type": "demo.sleep", "payload": {"ms": 1500, "steps": 3}});
    submit(state, command.to_string()).await
}

async fn file(
    State(backend): State<Backend>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> impl IntoResponse {
    match backend.files.get(&path) {
        Some(body) => ([(header::CONTENT_TYPE, "text/javascript")], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Runs `script` until it returns something other than null/false; panics after `T` with what
/// the page recorded.
async fn wait_page(browser: &Browser, what: &str, script: &str, args: Vec<Value>) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let value = browser.js(script, args.clone()).await;
        if !matches!(value, Value::Null | Value::Bool(false)) {
            return value;
        }
        if Instant::now() >= deadline {
            let seen = browser
                .js(
                    "return { views: (window.views || []).map((v) => `${v.status} ${v.version}`),
                              states: window.states, tokens: window.tokens, final: window.final,
                              storage: Object.entries(sessionStorage) };",
                    vec![],
                )
                .await;
            panic!("timed out waiting for {what}; the page saw {seen:#}");
        }
        tokio::time::sleep(POLL).await; // polling the page's state, not ordering
    }
}

/// Opens `url` and waits for the page's script.
async fn open_page(browser: &Browser, url: &str) {
    browser.client.goto(url).await.expect("load the page");
    wait_page(
        browser,
        "the page's script",
        "return window.ready === true;",
        vec![],
    )
    .await;
}

/// Submits through the page's backend and returns the id.
async fn submit_from_page(browser: &Browser, kind: &str, payload: Value) -> Uuid {
    let id = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.submit(arguments[0], arguments[1]).then(done, (e) => done('error: ' + e));",
            vec![json!(kind), payload],
        )
        .await
        .expect("submit from the page");
    Uuid::parse_str(id.as_str().expect("an id")).unwrap_or_else(|_| panic!("submit: {id}"))
}

/// Waits until the page holds the command's final view, and checks it is PostgreSQL's: the
/// view the server reads from the database, field for field. Returns the views the page saw.
async fn final_view_is_the_database_s(browser: &Browser, bus: &str, id: Uuid) -> Vec<Value> {
    let shown = wait_page(
        browser,
        "the final view",
        "return window.final || null;",
        vec![],
    )
    .await;
    let stored: Value = common::http_client()
        .get(format!("{bus}/v1/commands/{id}"))
        .send()
        .await
        .expect("read the command")
        .json()
        .await
        .expect("a view");
    // The push view is the detail without its payload; numbers compare as numbers (1 and 1.0).
    let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    };
    let fields = shown.as_object().expect("a view");
    assert!(fields.len() >= 15, "a whole view: {shown}");
    for (name, value) in fields {
        assert!(
            same(value, &stored[name]),
            "the page ends with what PostgreSQL holds: {name} is {value} in the page, {} stored",
            stored[name]
        );
    }
    let views = browser.js("return window.views;", vec![]).await;
    let views: Vec<Value> = serde_json::from_value(views).expect("views");
    let versions: Vec<i64> = views.iter().filter_map(|v| v["version"].as_i64()).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "each view shown once, in version order: {versions:?}"
    );
    views
}

/// A running app that allows the page's origin, and the page's server.
async fn app_and_page(module: Option<&str>) -> (TestApp, PageServer, Browser) {
    let (listener, origin) = PageServer::bind().await;
    let app = TestApp::start_tweaked(|config| config.http.allowed_origins = vec![origin]).await;
    let module = module.map_or_else(|| app.url("/v1/client.js"), str::to_owned);
    let page = PageServer::serve(listener, &app.base, &module, HashMap::new());
    (app, page, Browser::launch(DESKTOP).await)
}

/// The states the page's client went through.
async fn states(browser: &Browser) -> Vec<String> {
    serde_json::from_value(browser.js("return window.states;", vec![]).await).expect("states")
}
