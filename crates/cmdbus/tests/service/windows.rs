//! The Windows build for real, opt-in (`CMDBUS_TEST_WINDOWS=1`, with `CMDBUS_WINDOWS_EXE`, which
//! `scripts/windows.sh` builds and sets): `cmdbus.exe all` under Wine against the local
//! PostgreSQL and RabbitMQ serves, runs a command, and on Ctrl-C (Wine turns the SIGINT it is
//! sent into the console's `CTRL_C_EVENT`) drains it to its end and exits cleanly.
//!
//! ```text
//! scripts/windows.sh
//! ```

use crate::common::{Env, http_client, id_of, process::Proc, wait_ready};
use serde_json::{Value, json};
use std::{process::Command, time::Duration};

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_build_runs_a_command_and_drains_it_on_ctrl_c() {
    if std::env::var_os("CMDBUS_TEST_WINDOWS").is_none() {
        println!("skipped: run scripts/windows.sh (CMDBUS_TEST_WINDOWS=1) to test cmdbus.exe");
        return;
    }
    let exe = std::env::var("CMDBUS_WINDOWS_EXE").expect("CMDBUS_WINDOWS_EXE: the cmdbus.exe");
    let prefix = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wine");
    let mut wine = Command::new("wine");
    wine.arg(&exe)
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .stderr(std::process::Stdio::null());
    let env = Env::new();
    // Wine execs the program: the child's pid is cmdbus.exe's, which SIGINT reaches.
    let mut server = Proc::spawn_with(&env, wine, "all", &[("CMDBUS_SHUTDOWN_GRACE_SECS", "30")]);
    tokio::time::timeout(T, wait_ready(&reqwest::Client::new(), &server.base))
        .await
        .expect("cmdbus.exe reaches PostgreSQL and the broker");
    env.authorize().await;
    let http = http_client();

    let submitted: Value = http
        .post(format!("{}/v1/commands", server.base))
        .json(&json!({"type": "demo.sleep", "payload": {"ms": 3000, "steps": 3}}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("view");
    let id = id_of(&submitted);
    // Long-polls the command (its version as the ETag) until it runs.
    let deadline = tokio::time::Instant::now() + T;
    let mut version = submitted["version"].clone();
    loop {
        let response = http
            .get(format!("{}/v1/commands/{id}?wait=5", server.base))
            .header("if-none-match", format!("\"{version}\""))
            .send()
            .await
            .expect("read");
        assert!(tokio::time::Instant::now() < deadline, "never ran");
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            continue;
        }
        let view: Value = response.json().await.expect("view");
        if view["status"] == "running" {
            break;
        }
        version = view["version"].clone();
    }

    // Ctrl-C while the handler runs: it finishes during the drain, then the process exits.
    server.signal("INT");
    let exited = server
        .exit_within(T)
        .await
        .expect("cmdbus.exe exits after Ctrl-C");
    assert!(exited, "a clean exit after Ctrl-C");
    let pool = sqlx::PgPool::connect(&env.database_url)
        .await
        .expect("the test database");
    let status: String = sqlx::query_scalar("select status from commands where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("the command's row");
    assert_eq!(
        status, "success",
        "the running command finished in the drain"
    );
    pool.close().await;
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
