//! What the queues carry and how the broker is reached: priorities, ordering keys with retries,
//! quorum queues, a broker address list with a dead node, and a broker that never answers.

use super::*;

#[tokio::test]
async fn a_high_priority_command_overtakes_a_backlog() {
    let env = Env::new();
    // Only the api first: the backlog builds up in the queue.
    let app = TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let mut backlog: Vec<Uuid> = Vec::new();
    for n in 0..10 {
        backlog.push(
            app.submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 20, "steps": 1, "n": n}}))
                .await,
        );
    }
    let urgent = app
        .submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 20, "steps": 1}, "priority": 9}))
        .await;
    for id in backlog.iter().chain([&urgent]) {
        app.wait_status(*id, "queue", T).await;
    }
    let worker = TestApp::start_with(
        env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |config| {
            config.worker_concurrency = 1;
            config.prefetch = 1;
        },
    )
    .await;
    let mut started = Vec::new();
    for id in backlog.iter().chain([&urgent]) {
        let view = app.wait_status(*id, "success", T).await;
        started.push((
            view["started_at"].as_str().unwrap_or_default().to_owned(),
            id_of(&view),
        ));
    }
    started.sort();
    assert_eq!(
        started[0].1, urgent,
        "the priority-9 command ran first: {started:?}"
    );
    worker.stop_keeping_env().await;
    app.stop().await;
}

/// One successful run of `test.ordered`: which key, which position, when.
#[derive(Debug, Clone)]
struct Run {
    key: String,
    n: u64,
    attempt: i32,
    start: std::time::Instant,
    end: std::time::Instant,
}

/// `test.ordered`: records each successful run. The first command of each key (`n` 0) waits, up
/// to 10 s, until the other key's first command has started too: two keys that can run side by
/// side then do, however slowly the machine submits, and two that cannot leave the wait to time
/// out (and the overlap check to fail).
fn ordered_registry(runs: Arc<std::sync::Mutex<Vec<Run>>>) -> Registry {
    let firsts = Arc::new(tokio::sync::Barrier::new(2));
    let mut registry = Registry::new();
    registry.register(
        common::test_type("test.ordered", 3),
        move |ctx: Context, payload: Value| {
            let runs = Arc::clone(&runs);
            let firsts = Arc::clone(&firsts);
            async move {
                let start = std::time::Instant::now();
                if payload["n"] == 0 && ctx.attempt() == 1 {
                    let _ = tokio::time::timeout(Duration::from_secs(10), firsts.wait()).await;
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
                if payload["fail_once"] == true && ctx.attempt() == 1 {
                    return Err(HandlerError::retryable("once", "fails its first attempt"));
                }
                runs.lock().expect("runs").push(Run {
                    key: payload["key"].as_str().unwrap_or_default().to_owned(),
                    n: payload["n"].as_u64().unwrap_or_default(),
                    attempt: ctx.attempt(),
                    start,
                    end: std::time::Instant::now(),
                });
                Ok(Value::Null)
            }
        },
    );
    registry
}

#[tokio::test]
async fn commands_with_an_ordering_key_run_in_order_retries_included_while_keys_of_one_partition_run_in_parallel()
 {
    let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = TestApp::start_with(
        Env::new(),
        Role::All,
        ordered_registry(Arc::clone(&runs)),
        |config| config.worker_concurrency = 8,
    )
    .await;
    // Two keys of one partition: order is the database's, so they still run side by side.
    let partitions = cmdbus::Config::defaults().partitions;
    let first = "account-1".to_owned();
    let second = (2..100)
        .map(|n| format!("account-{n}"))
        .find(|key| {
            cmdbus_domain::partition_of(key, partitions)
                != cmdbus_domain::partition_of(&first, partitions)
        })
        .expect("a key in another partition");
    let mut ids = Vec::new();
    for n in 0..6_u64 {
        for key in [&first, &second] {
            let payload = json!({"key": key, "n": n, "fail_once": key == &first && n == 2});
            ids.push(
                app.submit_ok(
                    json!({"type": "test.ordered", "payload": payload, "ordering_key": key}),
                )
                .await,
            );
        }
    }
    for id in &ids {
        app.wait_status(*id, "success", T).await;
    }
    let runs = runs.lock().expect("runs").clone();
    eprintln!("RUNS {runs:?}");
    for key in [&first, &second] {
        let mut mine: Vec<&Run> = runs.iter().filter(|run| &run.key == key).collect();
        mine.sort_by_key(|run| run.start);
        let order: Vec<u64> = mine.iter().map(|run| run.n).collect();
        assert_eq!(
            order,
            (0..6).collect::<Vec<_>>(),
            "{key} ran in submission order"
        );
        assert!(
            mine.windows(2).all(|pair| pair[0].end <= pair[1].start),
            "{key}: one at a time"
        );
    }
    let retried = runs
        .iter()
        .find(|run| run.key == first && run.n == 2)
        .expect("run");
    assert_eq!(retried.attempt, 2, "the failed one was retried in place");
    let overlapped = runs.iter().filter(|a| a.key == first).any(|a| {
        runs.iter()
            .filter(|b| b.key == second)
            .any(|b| a.start < b.end && b.start < a.end)
    });
    assert!(overlapped, "different keys ran in parallel");
    app.stop().await;
}

#[tokio::test]
async fn quorum_queues_carry_commands_retries_and_ordered_partitions() {
    let app = TestApp::start_tweaked(|config| {
        config.queue_type = cmdbus::QueueTypeArg::Quorum;
    })
    .await;
    let plain = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    let ordered = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2, "ordering_key": "k"}))
        .await;
    let retried = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"times": 1}}))
        .await;
    for id in [plain, ordered, retried] {
        app.wait_status(id, "success", T).await;
    }
    let output = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "name", "type", "arguments"])
        .output()
        .expect("rabbitmqctl");
    let listing = String::from_utf8_lossy(&output.stdout);
    let queue_line = |queue: &str| {
        listing
            .lines()
            .find(|line| line.split('\t').next() == Some(queue))
            .unwrap_or_else(|| panic!("{queue} exists"))
            .to_owned()
    };
    // Every queue that ever holds a command's message is replicated — main, the exception lanes,
    // the ordered partitions — and has its delivery limit set explicitly (brokers disagree on
    // the default: none on 3.x, 20 on 4.x).
    let ns = &app.env.namespace;
    let mut command_queues = vec![
        format!("{ns}.cmd.demo.echo"),
        format!("{ns}.cmd.demo.echo.exceptions1"),
        format!("{ns}.cmd.demo.echo.exceptions2"),
    ];
    command_queues.extend((0..4).map(|p| format!("{ns}.cmd.demo.echo.p{p}")));
    let limit = format!(
        r#"{{"x-delivery-limit",{}}}"#,
        cmdbus_bus::QUORUM_DELIVERY_LIMIT
    );
    for queue in &command_queues {
        let line = queue_line(queue);
        assert!(
            line.contains("\tquorum\t"),
            "{queue} is a quorum queue: {line}"
        );
        assert!(line.contains(&limit), "{queue} has {limit}: {line}");
    }
    // The delay tiers that hold retries: a message that waits in a tier is as replicated as one
    // in a queue.
    let tier = queue_line(&format!("{ns}.retry.1s"));
    assert!(tier.contains("\tquorum\t"), "{tier}");
    app.stop().await;
}

/// A quorum namespace whose queues an older cmdbus declared without `x-delivery-limit`: the
/// broker refuses to redeclare them with it (a queue's arguments never change), and cmdbus keeps
/// them as they are instead of failing to connect.
#[tokio::test]
async fn a_quorum_queue_declared_without_the_delivery_limit_is_kept_and_still_carries_commands() {
    let env = Env::new();
    let queue = format!("{}.cmd.demo.echo", env.namespace);
    {
        let connection =
            lapin::Connection::connect(common::AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut arguments = lapin::types::FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            lapin::types::AMQPValue::LongString(format!("{}.exceptions", env.namespace).into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            lapin::types::AMQPValue::LongString("demo.echo.exceptions1".into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("the old declaration");
        let _ = connection.close(200, "declared".into()).await;
    }
    let app = TestApp::start_with(env, Role::All, cmdbus::builtin_registry(), |config| {
        config.queue_type = cmdbus::QueueTypeArg::Quorum;
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": "old queue"}))
        .await;
    app.wait_status(id, "success", T).await;
    let listing = common::process::rabbitmqctl(&["list_queues", "name", "arguments"]);
    let line = listing
        .lines()
        .find(|line| line.split('\t').next() == Some(queue.as_str()))
        .expect("the queue is still there");
    assert!(
        !line.contains("x-delivery-limit"),
        "kept as declared: {line}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_broker_address_list_connects_past_a_dead_node() {
    // Port 1 refuses connections: a node that is down. Whichever node a process starts with,
    // it ends up on the live one.
    let app = TestApp::start_tweaked(|config| {
        config.amqp_url = format!("amqp://guest:guest@127.0.0.1:1/%2f, {}", common::AMQP_URL);
    })
    .await;
    let id = app
        .submit_ok(json!({"type": "demo.echo", "payload": "across nodes"}))
        .await;
    app.wait_status(id, "success", T).await;
    app.stop().await;
}

/// A broker address that accepts connections and never says a word (a node stuck while it
/// recovers): the process neither hangs in its connect nor in its shutdown.
#[tokio::test]
async fn a_broker_that_accepts_and_never_answers_does_not_hang_the_process() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_address = silent.local_addr().expect("address");
    // Accepts and holds every connection, reading nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let env = Env::new();
    let mut config = env.config();
    config.amqp_url = format!("amqp://guest:guest@{silent_address}/%2f");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = tokio::spawn(cmdbus::run(
        Role::All,
        config,
        cmdbus::builtin_registry(),
        listener,
        shutdown.clone(),
    ));
    // Serving, but not ready: the broker never answered.
    common::wait_live_at(&base).await;
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), app).await;
    assert!(
        stopped.is_ok(),
        "shutdown hung on a broker that never answers"
    );
    holder.abort();
    env.teardown(&[]).await.ok();
}
