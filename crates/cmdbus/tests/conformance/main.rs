//! The HTTP API as an outsider sees it: the served `/openapi.json` is valid OpenAPI 3.1 and
//! describes every route the server answers, and Schemathesis, generating requests from that
//! description, finds nothing wrong with the answers — once without credentials and once with a
//! valid key. The tools live in `.venv` (`scripts/test.sh` installs them). The focused tests of
//! what Schemathesis once found are in `edges.rs`; `pgbouncer.rs`: cmdbus through PgBouncer in
//! transaction mode.

#[path = "../common/mod.rs"]
mod common;
mod edges;
mod pgbouncer;

use common::{TestApp, test_key};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};
use tokio::process::Command;

/// Seed of the generated cases: a fixed one, so that a failure reproduces.
const SEED: &str = "20261121";

/// Longest a Schemathesis pass may take (about half a minute each on two idle cores).
const PASS_LIMIT: Duration = Duration::from_secs(300);

/// Every route the server answers besides the web UI's files: what the description must name.
const ROUTES: [(&str, &str); 37] = [
    ("get", "/v1/commands"),
    ("get", "/v1/commands/counts"),
    ("post", "/v1/commands/discard"),
    ("post", "/v1/commands/{id}/discard"),
    ("get", "/v1/stats"),
    ("post", "/v1/commands"),
    ("post", "/v1/commands/batch"),
    ("post", "/v1/commands/retry"),
    ("post", "/v1/commands/cancel"),
    ("get", "/v1/commands/{id}"),
    ("post", "/v1/commands/{id}/retry"),
    ("post", "/v1/commands/{id}/cancel"),
    ("post", "/v1/commands/{id}/reschedule"),
    ("get", "/v1/commands/{id}/attempts"),
    ("get", "/v1/changes"),
    ("get", "/v1/workers"),
    ("get", "/v1/queues"),
    ("get", "/v1/audit"),
    ("get", "/v1/types"),
    ("post", "/v1/types/{name}/pause"),
    ("post", "/v1/types/{name}/resume"),
    ("get", "/v1/schedules"),
    ("post", "/v1/schedules"),
    ("post", "/v1/schedules/{id}/pause"),
    ("post", "/v1/schedules/{id}/resume"),
    ("delete", "/v1/schedules/{id}"),
    ("get", "/v1/whoami"),
    ("post", "/v1/tokens"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/ws"),
    ("get", "/v1/events"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// A tool of the conformance suite's virtualenv, or a failure that says how to install it.
fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "{name} is not installed at {}: run ./scripts/test.sh, or `python3 -m venv .venv && \
         .venv/bin/pip install -r scripts/conformance-requirements.txt` at the repository root",
        path.display()
    );
    path
}

/// Runs `command` to its end, within `limit`. Past it the tool is killed and the test fails with
/// what it had printed, so that a slow pass says which operations it was at.
async fn run(mut command: Command, limit: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("tool starts");
    let stdout = read_to_end(child.stdout.take().expect("stdout"));
    let stderr = read_to_end(child.stderr.take().expect("stderr"));
    let (status, timed_out) = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => (status.expect("tool status"), false),
        Err(_) => {
            child.kill().await.expect("kill the tool");
            (child.wait().await.expect("tool status"), true)
        }
    };
    let output = Output {
        status,
        stdout: stdout.await.expect("stdout reader"),
        stderr: stderr.await.expect("stderr reader"),
    };
    assert!(
        !timed_out,
        "{command:?} took longer than {limit:?}; it printed:\n{}",
        report(&output)
    );
    output
}

/// All a pipe yields until it closes, read beside the process so that a full pipe never stalls it.
fn read_to_end(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
        bytes
    })
}

fn report(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The description as served, fetched like any client would (it needs no credentials).
async fn served_description(app: &TestApp) -> Value {
    let response = reqwest::get(app.url("/openapi.json"))
        .await
        .expect("openapi");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_served_description_is_valid_openapi_3_1() {
    let validator = tool("openapi-spec-validator");
    let app = TestApp::start().await;
    let doc = served_description(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, doc.to_string()).expect("write the description");
    let mut command = Command::new(validator);
    command.arg("--schema").arg("3.1").arg(&file);
    let output = run(command, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&file);
    assert!(output.status.success(), "{}", report(&output));
    app.stop().await;
}

#[tokio::test]
async fn the_description_names_every_route_served_and_each_answers() {
    let app = TestApp::start().await;
    let doc = served_description(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(described, served);

    // And each answers: a route that does not exist gets a bare 404 or 405; ours answer, or
    // explain with a problem.
    let unknown = uuid::Uuid::now_v7().to_string();
    for (method, path) in &described {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = app
            .http
            .request(method.clone(), app.url(&path.replace("{id}", &unknown)))
            .json(&json!({"type": "demo.noop"}))
            .send()
            .await
            .expect("request");
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value == "application/problem+json");
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED
                && (status != StatusCode::NOT_FOUND || problem),
            "{method} {path}: {status}"
        );
    }
    app.stop().await;
}

/// One Schemathesis pass over the served description; `Err` holds its report.
async fn schemathesis(app: &TestApp, headers: &[String]) -> Result<(), String> {
    let mut command = Command::new(tool("schemathesis"));
    command
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .arg("--config-file")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(app.url("/openapi.json"))
        .arg("--seed")
        .arg(std::env::var("CMDBUS_CONFORMANCE_SEED").unwrap_or_else(|_| SEED.to_owned()));
    if let Ok(examples) = std::env::var("CMDBUS_CONFORMANCE_EXAMPLES") {
        command.arg("--max-examples").arg(examples);
    }
    for header in headers {
        command.arg("--header").arg(header);
    }
    let output = run(command, PASS_LIMIT).await;
    if output.status.success() {
        Ok(())
    } else {
        Err(report(&output))
    }
}

#[tokio::test]
async fn schemathesis_finds_nothing_with_a_key_or_without_credentials() {
    tool("schemathesis");
    let app = TestApp::start().await;
    // Without credentials every /v1 route answers 401 (the checks see that it does, and how).
    let anonymous = schemathesis(&app, &[]).await;
    let keyed = schemathesis(&app, &[format!("Authorization: Bearer {}", test_key().key)]).await;
    app.stop().await;
    let mut failed = Vec::new();
    if let Err(report) = anonymous {
        failed.push(format!("=== without credentials ===\n{report}"));
    }
    if let Err(report) = keyed {
        failed.push(format!("=== with a key ===\n{report}"));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
