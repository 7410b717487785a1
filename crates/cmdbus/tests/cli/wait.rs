//! `cmdbus submit --wait`: exit codes by outcome, the bar on a terminal only, the long-poll when
//! there is no WebSocket.

use super::{T, cmdbus, run, run_command};
use crate::common::{Env, TestApp, test_key};
use cmdbus::Role;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use uuid::Uuid;

#[tokio::test]
async fn submit_wait_exits_0_on_success_2_on_fail() {
    let app = TestApp::start().await;

    let done = run(
        &app,
        &["submit", "demo.echo", "--payload", r#"{"x":1}"#, "--wait"],
    )
    .await;
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stdout.starts_with("submitted "), "{done:?}");
    assert!(
        done.stdout.trim_end().ends_with(r#"success: {"x":1}"#),
        "{done:?}"
    );

    let failed = run(
        &app,
        &[
            "submit",
            "demo.fail",
            "--payload",
            r#"{"permanent":true}"#,
            "--wait",
        ],
    )
    .await;
    assert_eq!(failed.code, 2, "{failed:?}");
    assert!(
        failed
            .stdout
            .contains("fail: demo_permanent: failed on purpose, for good"),
        "{failed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn submit_wait_exits_3_when_the_command_is_cancelled_while_it_waits() {
    let app = TestApp::start().await;
    let mut child = cmdbus(
        &app,
        &[
            "submit",
            "demo.sleep",
            "--payload",
            r#"{"ms":60000,"steps":600}"#,
            "--wait",
        ],
    )
    .spawn()
    .expect("cmdbus runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines.next_line().await.expect("stdout").expect("a line");
    let id: Uuid = first
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {first:?}"));
    // Cancel once the client has shown the command running: it is waiting on it by then.
    loop {
        let line = tokio::time::timeout(T, lines.next_line())
            .await
            .expect("progress in time")
            .expect("stdout")
            .expect("a line before the end");
        if line.starts_with("running") {
            break;
        }
    }
    let cancel = app.post(&format!("/v1/commands/{id}/cancel")).await;
    assert_eq!(cancel.status(), 202);
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.expect("stdout") {
        rest.push(line);
    }
    let status = tokio::time::timeout(T, child.wait())
        .await
        .expect("ended in time")
        .expect("exit status");
    assert_eq!(status.code(), Some(3), "{rest:?}");
    assert_eq!(
        rest.last().map(String::as_str),
        Some("cancelled"),
        "{rest:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_bar_is_drawn_on_a_terminal_and_plain_lines_when_piped() {
    let app = TestApp::start().await;
    let args = [
        "submit",
        "demo.sleep",
        "--payload",
        r#"{"ms":600,"steps":3}"#,
        "--wait",
    ];
    // `script` runs the binary on a pseudo-terminal and copies what it drew to our pipe.
    let line = std::iter::once(env!("CARGO_BIN_EXE_cmdbus").to_owned())
        .chain(args.iter().map(|arg| format!("'{arg}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut on_a_terminal = tokio::process::Command::new("script");
    on_a_terminal
        .args(["-qec", &line, "/dev/null"])
        .env("CMDBUS_URL", &app.base)
        .env("CMDBUS_KEY", &test_key().key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let drawn = run_command(on_a_terminal).await;
    assert_eq!(drawn.code, 0, "{drawn:?}");
    let full_bar = format!("[{}] 100%", "#".repeat(30));
    assert!(drawn.stdout.contains(&full_bar), "{drawn:?}");
    assert!(drawn.stdout.contains("step 3/3"), "{drawn:?}");

    let piped = run(&app, &args).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(!piped.stdout.contains("[#"), "{piped:?}");
    assert!(!piped.stdout.contains('\u{1b}'), "escape codes: {piped:?}");
    assert!(
        piped
            .stdout
            .lines()
            .any(|line| line.starts_with("running") && line.contains("% step ")),
        "{piped:?}"
    );
    assert!(
        piped
            .stdout
            .contains("success: {\"slept_ms\":600,\"steps\":3}"),
        "{piped:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_websocket_submit_wait_long_polls() {
    // The api role serves no `/v1/ws`: the client falls back to `GET /v1/commands/{id}?wait=`.
    let env = Env::new();
    let api = TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let worker = TestApp::start_with(env, Role::Worker, cmdbus::builtin_registry(), |_| {}).await;
    let done = run(
        &api,
        &[
            "submit",
            "demo.sleep",
            "--payload",
            r#"{"ms":600,"steps":3}"#,
            "--wait",
        ],
    )
    .await;
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stderr.contains("long-polling"), "{done:?}");
    assert!(done.stdout.contains("success: "), "{done:?}");
    worker.stop_keeping_env().await;
    api.stop().await;
}
