//! Batch submit against the real services: a result per command in the order sent, a bad
//! command among good ones refused alone, idempotent repeats inside a batch and across batches,
//! delayed commands allowed, the quota and the rate counting commands, and more than 1,000
//! refused with a clear error.

use super::*;

/// `POST /v1/commands/batch` with `commands`, as `http`.
async fn batch_as(
    app: &TestApp,
    http: &reqwest::Client,
    commands: &[Value],
) -> (StatusCode, Value) {
    let response = http
        .post(app.url("/v1/commands/batch"))
        .json(&json!({ "commands": commands }))
        .send()
        .await
        .expect("batch");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

fn results(answer: &Value) -> Vec<Value> {
    answer["results"].as_array().expect("results").clone()
}

#[tokio::test]
async fn each_command_gets_its_result_in_order_and_a_bad_one_fails_alone() {
    let app = TestApp::start().await;
    let commands = [
        json!({"type": "demo.echo", "payload": 0}),
        json!({"type": "demo.echo", "payload": 1, "idempotency_key": "k1"}),
        json!({"type": "no.such.type", "payload": 2}),
        json!({"type": "demo.echo", "payload": 3, "priority": 12}),
        json!({"type": "demo.echo", "payload": 4, "nonsense": true}),
        // The same key and command again, inside the same batch: the first one's command.
        json!({"type": "demo.echo", "payload": 1, "idempotency_key": "k1"}),
        // The same key with another command.
        json!({"type": "demo.echo", "payload": 6, "idempotency_key": "k1"}),
        json!({"type": "demo.echo", "payload": 7, "delay": 3600}),
        json!({"type": "demo.echo", "payload": 8, "idempotency_key": "k8"}),
    ];
    let (status, answer) = batch_as(&app, &app.http, &commands).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = results(&answer);
    let statuses: Vec<_> = results.iter().map(|r| r["status"].clone()).collect();
    assert_eq!(
        statuses,
        [202, 202, 422, 422, 422, 200, 422, 202, 202].map(|s| json!(s)),
        "{answer}"
    );
    let codes: Vec<_> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "",
            "",
            "unknown_type",
            "invalid_field",
            "invalid_body",
            "",
            "idempotency_key_reused",
            "",
            ""
        ]
    );
    // In the order sent: each accepted result is its own command.
    for (index, result) in results.iter().enumerate() {
        if result["status"] == 202 {
            let id = id_of(&result["command"]);
            let view = app.get_json(&format!("/v1/commands/{id}")).await;
            assert_eq!(view["payload"], commands[index]["payload"], "item {index}");
        }
    }
    assert_eq!(results[5]["command"]["id"], results[1]["command"]["id"]);
    assert_eq!(results[7]["command"]["status"], "scheduled");
    assert_eq!(
        app.count("select count(*) from commands").await,
        4,
        "the four accepted, nothing of the refused"
    );
    for index in [0, 1, 8] {
        app.wait_status(id_of(&results[index]["command"]), "success", T)
            .await;
    }

    // The whole batch again: the keyed commands are repeats now, the others new.
    let (_, again) = batch_as(&app, &app.http, &commands).await;
    let again = self::results(&again);
    let statuses: Vec<_> = again.iter().map(|r| r["status"].clone()).collect();
    assert_eq!(
        statuses,
        [202, 200, 422, 422, 422, 200, 422, 202, 200].map(|s| json!(s))
    );
    assert_eq!(again[1]["command"]["id"], results[1]["command"]["id"]);
    assert_eq!(again[8]["command"]["id"], results[8]["command"]["id"]);
    assert_eq!(again[8]["command"]["status"], "success");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_holds_at_most_a_thousand_commands_in_a_body_larger_than_a_submit() {
    let app = TestApp::start().await;
    // 1,000 commands of 300 bytes each: more than a single submit's 256 KiB body.
    let padding = "x".repeat(300);
    let commands: Vec<Value> = (0..1_000)
        .map(|n| json!({"type": "demo.noop", "payload": {"n": n, "pad": padding}}))
        .collect();
    let (status, answer) = batch_as(&app, &app.http, &commands).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(results(&answer).iter().all(|r| r["status"] == 202));

    let mut over = commands.clone();
    over.push(json!({"type": "demo.noop"}));
    let (status, problem) = batch_as(&app, &app.http, &over).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid_field");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("1001") && detail.contains("1000")),
        "{problem}"
    );
    assert_eq!(
        app.count("select count(*) from commands").await,
        1_000,
        "nothing of the refused batch"
    );
    app.stop().await;
}

/// Registers a type no worker handles, so that its commands stay unfinished.
async fn idle_type(app: &TestApp) {
    cmdbus_store::register_types(&app.pool, &[common::test_type("test.idle", 1)])
        .await
        .expect("type registered");
}

/// `n` commands of that type.
fn idle(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"type": "test.idle", "payload": i}))
        .collect()
}

#[tokio::test]
async fn the_quota_counts_commands_not_requests() {
    let app = TestApp::start_tweaked(|config| config.auth.max_unfinished_per_tenant = 5).await;
    idle_type(&app).await;

    let (status, problem) = batch_as(&app, &app.http, &idle(6)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "quota_exceeded");
    assert_eq!(
        app.count("select count(*) from commands").await,
        0,
        "refused whole"
    );

    let (status, answer) = batch_as(&app, &app.http, &idle(5)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(results(&answer).iter().all(|r| r["status"] == 202));
    let (status, problem) = batch_as(&app, &app.http, &idle(1)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["code"], "quota_exceeded", "five of five are used");
    assert_eq!(app.count("select count(*) from commands").await, 5);
    app.stop().await;
}

#[tokio::test]
async fn the_rate_counts_commands_not_requests() {
    let app = TestApp::start_tweaked(|config| {
        config.auth.rate_limit = 1;
        config.auth.rate_burst = 10;
    })
    .await;
    idle_type(&app).await;

    // More commands than the burst can never pass: said so, and nothing recorded.
    let (status, problem) = batch_as(&app, &app.http, &idle(12)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["code"], "rate_limited");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("smaller batches")),
        "{problem}"
    );
    // That request spent one; eight of the nine left pass in one request.
    let (status, answer) = batch_as(&app, &app.http, &idle(8)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // One left (and one more a second): five commands in one request are over the rate.
    let (status, problem) = batch_as(&app, &app.http, &idle(5)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(app.count("select count(*) from commands").await, 8);
    app.stop().await;
}
