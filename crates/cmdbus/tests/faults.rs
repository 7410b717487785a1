//! Fault tests: break real processes and services, then count what survived. They restart the
//! shared broker, so they run one at a time (cargo runs test binaries one after another, and
//! the lock below serialises the tests of this one).

mod common;

use cmdbus::Role;
use common::{Env, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::sync::Mutex;
use uuid::Uuid;

static SERIAL: Mutex<()> = Mutex::const_new(());

const T: Duration = Duration::from_secs(90);

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
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

#[tokio::test]
async fn commands_submitted_while_the_broker_is_stopped_all_finish_after_it_starts() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::start().await;
    let mut ids: Vec<Uuid> = Vec::new();
    for n in 0..5 {
        ids.push(
            app.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let stopped = BrokerStopped::stop_app();
    for n in 5..15 {
        let (status, view) = app.submit(json!({"type": "demo.echo", "payload": n})).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "accepted while the broker is down: {view}"
        );
        ids.push(common::id_of(&view));
    }
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready without a broker"
    );
    drop(stopped); // start_app
    for id in &ids {
        app.wait_status(*id, "success", T).await;
    }
    let (total, success) = census(&app, "broker stop_app/start_app").await;
    assert_eq!(
        (total, success),
        (15, 15),
        "every accepted command finished"
    );
    let attempts = app
        .count("select count(*) from command_attempts where outcome = 'success'")
        .await;
    assert_eq!(attempts, 15, "one successful finish each");
    app.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_command_loses_its_lease_and_the_command_finishes_once() {
    let _serial = SERIAL.lock().await;
    let env = Env::new();
    // The in-process app is api only (relay, reaper, long-poll); workers are real processes.
    let app = TestApp::start_with(
        env.clone(),
        Role::Api,
        cmdbus::builtin_registry(),
        |config| {
            config.lease_secs = 2.0;
        },
    )
    .await;
    let mut first = spawn_worker(&env, "2");
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 3000, "steps": 30}}))
        .await;
    let running = app
        .wait_until(id, T, |view| {
            view["status"] == "running" && view["progress"].as_f64().is_some_and(|p| p >= 0.2)
        })
        .await
        .expect("running with progress");
    assert_eq!(running["attempt"], 1);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let mut second = spawn_worker(&env, "2");
    let done = app.wait_status(id, "success", T).await;
    second.kill().expect("stop second worker");
    second.wait().expect("reaped");
    assert_eq!(
        done["attempt"], 2,
        "the killed attempt counts, the second one finished"
    );
    let successes = app
        .count(&format!(
            "select count(*) from command_attempts where command_id = '{id}' and outcome = 'success'"
        ))
        .await;
    assert_eq!(successes, 1, "exactly one successful finish");
    census(&app, "worker SIGKILL").await;
    assert_eq!(
        app.count("select count(*) from commands where status = 'running'")
            .await,
        0
    );
    app.stop().await;
}
