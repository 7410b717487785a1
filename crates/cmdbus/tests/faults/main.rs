//! Fault tests: break real processes and services, then count what survived. They restart the
//! shared broker, so they run one at a time (cargo runs test binaries one after another, and
//! the lock below serialises the tests of this one). The app under test runs in the test's own
//! process, so the tests run on a multi-threaded runtime and wait for slow commands off it: a
//! test that blocked its runtime would freeze the app (no lease renewed) and test a pause of
//! the whole process instead of the fault it names.
//! `processes`: workers and apis killed or stopped, the broker stopped under submits, a handler
//! longer than the consumer timeout; `streams`: a steady stream through each service fault.

#[path = "../common/mod.rs"]
mod common;

mod processes;
mod streams;

use cmdbus::Role;
use cmdbus_worker::{Context, HandlerError, Registry};
use common::{Env, TestApp, process::api_with_short_lease};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::sync::Mutex;
use uuid::Uuid;

static SERIAL: Mutex<()> = Mutex::const_new(());

const T: Duration = Duration::from_secs(90);

fn rabbitmqctl(args: &[&str]) {
    // Bounded: a broker that will not start again fails the test instead of hanging it.
    let status = Command::new("timeout")
        .arg("180")
        .arg("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker app again even when the test fails half-way.
struct BrokerStopped;

impl BrokerStopped {
    fn stop_app() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
    }
}

/// Waits until `/readyz` reports the broker outage (the app notices within moments).
async fn wait_not_ready(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        if ready.status() == StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready without a broker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling readiness
    }
}

/// A `cmdbus worker` child process of this test's environment.
fn spawn_worker(env: &Env, lease_secs: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .arg("worker")
        .envs(env.vars())
        .env("CMDBUS_LEASE_SECS", lease_secs)
        .stdout(Stdio::null())
        .spawn()
        .expect("worker process starts")
}

/// Counts of the environment's commands by status, printed for the record.
async fn census(app: &TestApp, label: &str) -> (i64, i64) {
    let total = app.count("select count(*) from commands").await;
    let success = app
        .count("select count(*) from commands where status = 'success'")
        .await;
    let stuck = app
        .count("select count(*) from commands where status in ('new', 'queue', 'running')")
        .await;
    println!("{label}: accepted={total} success={success} unfinished={stuck}");
    (total, success)
}

/// A free port on 127.0.0.1 for a child process to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

fn spawn_api(env: &Env, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .arg("api")
        .envs(env.vars())
        .env("CMDBUS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CMDBUS_SWEEP_INTERVAL_MS", "200")
        .stdout(Stdio::null())
        .spawn()
        .expect("api process starts")
}
