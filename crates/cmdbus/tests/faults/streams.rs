//! A steady stream of commands through each service fault: the broker stopped, killed or its
//! connections closed, database backends terminated, PostgreSQL restarted.

use super::*;

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
