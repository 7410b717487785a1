//! Processes killed or stopped: a worker killed mid-command or stopped with SIGTERM, an api killed
//! between insert and publish, the broker stopped under submits, a handler longer than the
//! consumer timeout.

use super::*;

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
