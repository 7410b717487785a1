//! Fault tests: break real processes and services, then count what survived. They restart the
//! shared broker, so they run one at a time (cargo runs test binaries one after another, and
//! the lock below serialises the tests of this one). The app under test runs in the test's own
//! process, so the tests run on a multi-threaded runtime and wait for slow commands off it: a
//! test that blocked its runtime would freeze the app (no lease renewed) and test a pause of
//! the whole process instead of the fault it names.

mod common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    wait_not_ready(&app).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_command_loses_its_lease_and_the_command_finishes_once() {
    let _serial = SERIAL.lock().await;
    let env = Env::new();
    // The in-process app is api only (relay, reaper, long-poll); workers are real processes.
    let app = api_with_short_lease(&env).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_finishes_its_running_command_then_exits() {
    let _serial = SERIAL.lock().await;
    let env = Env::new();
    let app = TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let mut worker = spawn_worker(&env, "30");
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 1500, "steps": 15}}))
        .await;
    app.wait_until(id, T, |view| {
        view["status"] == "running" && view["progress"].as_f64().is_some_and(|p| p > 0.0)
    })
    .await
    .expect("running");
    let signalled = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(signalled.success());
    // Graceful: the process lets its handler finish within the grace period, then exits cleanly.
    let exit = worker.wait().expect("worker exits");
    assert!(exit.success(), "clean exit: {exit:?}");
    let view = app.wait_status(id, "success", Duration::from_secs(5)).await;
    assert_eq!(
        view["attempt"], 1,
        "finished by the stopping worker, not re-run"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The stream harness: a steady stream of commands whose handler records its effect in a table
// with a unique key, one fault in the middle, then the count of what survived.

/// Commands in each stream.
const STREAM: usize = 60;

/// `test.effect` sleeps a little, then records its effect; a second effect for the same command
/// violates the unique key and fails the command, so "nothing done twice" is counted, not assumed.
fn effect_registry(database_url: &str) -> Registry {
    let pool = PgPool::connect_lazy(database_url).expect("lazy pool");
    let mut registry = Registry::new();
    registry.register(
        common::test_type("test.effect", 10),
        move |ctx: Context, _payload: Value| {
            let pool = pool.clone();
            async move {
                tokio::select! {
                    _ = ctx.cancellation().cancelled() => {
                        return Err(HandlerError::retryable("stopped", "cancelled"));
                    }
                    _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                }
                let inserted =
                    sqlx::query("insert into effects (command_id, attempt) values ($1, $2)")
                        .bind(ctx.id())
                        .bind(ctx.attempt())
                        .execute(&pool)
                        .await;
                match inserted {
                    Ok(_) => Ok(json!({"recorded": true})),
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Err(
                        HandlerError::permanent("duplicate_effect", "effect recorded twice"),
                    ),
                    Err(error) => Err(HandlerError::retryable("effect_failed", error.to_string())),
                }
            }
        },
    );
    registry
}

/// What the stream left behind.
#[derive(Debug)]
struct Census {
    accepted: usize,
    rows: i64,
    success: i64,
    effects: i64,
    unfinished: i64,
}

/// Runs a stream of `test.effect` commands, injects `fault` once a third has been submitted,
/// waits until every recorded command is finished, and checks the counts.
async fn stream_with_fault<F, Fut>(label: &str, fault: F) -> Census
where
    F: FnOnce(Arc<TestApp>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let env = Env::new();
    let app = Arc::new(
        TestApp::start_with(
            env.clone(),
            Role::All,
            effect_registry(&env.database_url),
            |config| {
                config.lease_secs = 5.0;
            },
        )
        .await,
    );
    sqlx::query("create table effects (command_id uuid primary key, attempt int not null)")
        .execute(&app.pool)
        .await
        .expect("effects table");
    let submitted = Arc::new(AtomicUsize::new(0));
    let submitter = tokio::spawn({
        let (app, submitted) = (Arc::clone(&app), Arc::clone(&submitted));
        async move {
            let mut accepted = Vec::new();
            for n in 0..STREAM {
                let response = app
                    .http
                    .post(app.url("/v1/commands"))
                    .json(&json!({"type": "test.effect", "payload": {"n": n}}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if let Ok(response) = response
                    && response.status() == StatusCode::ACCEPTED
                    && let Ok(view) = response.json::<Value>().await
                {
                    accepted.push(common::id_of(&view));
                }
                submitted.fetch_add(1, Ordering::SeqCst);
                // A steady stream, so that the fault lands among commands in every state.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            accepted
        }
    });
    while submitted.load(Ordering::SeqCst) < STREAM / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await; // waiting for the stream to be under way
    }
    fault(Arc::clone(&app)).await;
    let accepted = submitter.await.expect("submitter");

    // Quiet: every recorded command reaches a terminal state.
    app.wait_count(
        "select count(*) from commands where status in ('new', 'queue', 'running')",
        &format!("{label}: commands stuck"),
        |count| count == 0,
    )
    .await;
    let census = Census {
        accepted: accepted.len(),
        rows: app
            .wait_count("select count(*) from commands", "reading counts", |_| true)
            .await,
        success: app
            .wait_count(
                "select count(*) from commands where status = 'success'",
                "reading counts",
                |_| true,
            )
            .await,
        effects: app
            .wait_count("select count(*) from effects", "reading counts", |_| true)
            .await,
        unfinished: app
            .wait_count(
                "select count(*) from commands where status in ('new', 'queue', 'running')",
                "reading counts",
                |_| true,
            )
            .await,
    };
    println!(
        "{label}: submitted={STREAM} accepted={} recorded={} success={} effects={} unfinished={}",
        census.accepted, census.rows, census.success, census.effects, census.unfinished
    );
    for id in &accepted {
        let status: String = sqlx::query_scalar("select status from commands where id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("accepted command is recorded");
        assert_eq!(status, "success", "{label}: accepted command {id}");
    }
    assert_eq!(
        census.rows, census.success,
        "{label}: every recorded command succeeded"
    );
    assert_eq!(
        census.effects, census.success,
        "{label}: one effect per command"
    );
    assert_eq!(census.unfinished, 0);
    assert!(
        census.accepted >= STREAM / 3,
        "{label}: the stream was accepted"
    );
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("app still shared"),
    }
    census
}

/// Waits until a freshly started broker node has booted (`await_startup` refuses to wait for
/// a node whose VM is not up yet, so it is asked again until it can).
fn wait_broker_booted() {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let booted = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if booted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not boot"
        );
        std::thread::sleep(Duration::from_millis(500)); // waiting for the VM to come up
    }
}

/// The broker's Erlang VM pid.
fn broker_pid() -> String {
    let output = Command::new("rabbitmqctl")
        .args(["eval", "os:getpid()."])
        .output()
        .expect("rabbitmqctl eval");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_matches('"')
        .to_owned()
}

fn postgres_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a PostgreSQL cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_broker_stop_app_and_start_app() {
    let _serial = SERIAL.lock().await;
    stream_with_fault("broker stop_app/start_app", |app| async move {
        let stopped = BrokerStopped::stop_app();
        wait_not_ready(&app).await;
        tokio::time::sleep(Duration::from_secs(1)).await; // the outage lasts a while
        drop(stopped);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_the_broker_process_killed_and_restarted() {
    let _serial = SERIAL.lock().await;
    stream_with_fault("broker SIGKILL + restart", |_app| async move {
        let pid = broker_pid();
        assert!(!pid.is_empty(), "broker pid");
        let killed = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let started = Command::new("rabbitmq-server")
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("rabbitmq-server");
        assert!(started.success());
        tokio::task::spawn_blocking(wait_broker_booted)
            .await
            .expect("broker boot wait");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_all_broker_connections_closed() {
    let _serial = SERIAL.lock().await;
    stream_with_fault("broker close_all_connections", |_app| async move {
        rabbitmqctl(&["close_all_connections", "fault test"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_database_backends_terminated() {
    let _serial = SERIAL.lock().await;
    stream_with_fault("pg_terminate_backend", |app| async move {
        let admin = PgPool::connect(common::DATABASE_SERVER)
            .await
            .expect("admin pool");
        let database = app
            .env
            .database_url
            .rsplit('/')
            .next()
            .expect("db name")
            .to_owned();
        let killed: Vec<bool> = sqlx::query_scalar(
            "select pg_terminate_backend(pid) from pg_stat_activity
              where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&admin)
        .await
        .expect("terminate");
        println!("terminated {} backends", killed.len());
        assert!(!killed.is_empty());
        admin.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_a_database_restart() {
    let _serial = SERIAL.lock().await;
    stream_with_fault("PostgreSQL restart", |_app| async move {
        let status = Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &postgres_version(),
                "main",
                "restart",
            ])
            .status()
            .expect("pg_ctlcluster");
        assert!(status.success(), "restart PostgreSQL");
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_between_insert_and_publish_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let env = Env::new();
    // The worker runs in-process; the apis are real processes, killed for real.
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |_| {},
    )
    .await;
    // With the broker stopped, every submit is recorded but cannot be published: the window
    // between insert and publish stays open until we kill the api inside it.
    let stopped = BrokerStopped::stop_app();
    let port = free_port();
    let mut first = spawn_api(&env, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = env.http().await;
    common::wait_live_at(&base).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let response = http
            .post(format!("{base}/v1/commands"))
            .json(&json!({"type": "demo.echo", "payload": n}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let view: Value = response.json().await.expect("json");
        assert_eq!(view["status"], "new", "not confirmed by a stopped broker");
        ids.push(common::id_of(&view));
    }
    first.kill().expect("SIGKILL the api");
    first.wait().expect("reaped");
    drop(stopped); // start_app

    // Another api process finds the unpublished rows and relays them.
    let port = free_port();
    let mut second = spawn_api(&env, port);
    worker
        .wait_count(
            "select count(*) from commands where status = 'success'",
            "relayed commands did not finish",
            |count| count == 5,
        )
        .await;
    second.kill().expect("stop second api");
    second.wait().expect("reaped");
    let once = worker
        .count("select count(*) from command_attempts where outcome = 'success'")
        .await;
    println!(
        "api SIGKILL between insert and publish: accepted=5 success=5 successful finishes={once}"
    );
    assert_eq!(once, 5);
    for id in ids {
        let status: String = sqlx::query_scalar("select status from commands where id = $1")
            .bind(id)
            .fetch_one(&worker.pool)
            .await
            .expect("row");
        assert_eq!(status, "success");
    }
    worker.stop().await;
}

/// Lowers the broker's consumer timeout for channels opened from now on; restores the default
/// (30 min) when dropped, even if the test fails.
struct ConsumerTimeout;

impl ConsumerTimeout {
    fn set(ms: u32) -> Self {
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, consumer_timeout, {ms})."),
        ]);
        Self
    }
}

impl Drop for ConsumerTimeout {
    fn drop(&mut self) {
        rabbitmqctl(&[
            "eval",
            "application:set_env(rabbit, consumer_timeout, 1800000).",
        ]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_longer_than_the_consumer_timeout_still_finishes_exactly_once() {
    let _serial = SERIAL.lock().await;
    let _timeout = ConsumerTimeout::set(2_000);
    // The broker checks consumer timeouts about once a minute: the handler outlasts that check,
    // so the broker closes the worker's channel and requeues the message while it runs.
    let app = TestApp::start_tweaked(|config| {
        config.lease_secs = 5.0;
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 75000, "steps": 75}}))
        .await;
    let done = app
        .wait_status(id, "success", Duration::from_secs(180))
        .await;
    assert_eq!(
        done["attempt"], 1,
        "the redelivered copy never ran the handler again"
    );
    let successes = app
        .count("select count(*) from command_attempts where outcome = 'success'")
        .await;
    let attempts = app.count("select count(*) from command_attempts").await;
    println!(
        "consumer timeout: accepted=1 success=1 attempts={attempts} successful finishes={successes}"
    );
    assert_eq!((attempts, successes), (1, 1));
    app.stop().await;
}
