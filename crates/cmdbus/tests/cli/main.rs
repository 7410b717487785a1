//! The `cmdbus` binary's client side against the real app, PostgreSQL and RabbitMQ: the test
//! starts the app in-process and runs the built binary (`CARGO_BIN_EXE_cmdbus`) as a person or a
//! script would, with `CMDBUS_URL` and `CMDBUS_KEY`. `wait`: `submit --wait`, its exit codes,
//! its bar and its fallback; `watch`: following live, resuming, long-polling; `scripts`:
//! `--json` output, tokens, bulk retry, bad input.

#[path = "../common/mod.rs"]
mod common;

mod scripts;
mod wait;
mod watch;

use common::{TestApp, test_key};
use std::{process::Stdio, time::Duration};
use tokio::process::Command;

const T: Duration = Duration::from_secs(60);

/// What one run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout's lines, each parsed as one JSON document.
    fn documents(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not one JSON document: {line:?}: {error}"))
            })
            .collect()
    }

    fn document(&self) -> serde_json::Value {
        let documents = self.documents();
        assert_eq!(documents.len(), 1, "{self:?}");
        documents.into_iter().next().expect("one document")
    }
}

/// The binary, pointed at `app` with the test key, and no other setting: a client command must
/// read none of the server's (these are deliberately unusable).
fn cmdbus(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cmdbus"));
    command
        .args(args)
        .env("CMDBUS_URL", &app.base)
        .env("CMDBUS_KEY", &test_key().key)
        .env("CMDBUS_DATABASE_URL", "not a url")
        .env("CMDBUS_LISTEN", "not an address")
        .env("CMDBUS_LEASE_SECS", "not a number")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the binary to its end (within `T`).
async fn run(app: &TestApp, args: &[&str]) -> Run {
    run_command(cmdbus(app, args)).await
}

async fn run_command(mut command: Command) -> Run {
    let output = tokio::time::timeout(T, command.output())
        .await
        .expect("cmdbus ended in time")
        .expect("cmdbus runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
