//! The example worker (`examples/worker/`): its handlers, run through `cmdbus::worker::run`
//! beside an api of the same database and namespace, as a team's own binary runs beside
//! `cmdbus api`. The api learns the worker's types and their schemas from the catalogue.

use super::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[path = "../../../../examples/worker/src/handlers.rs"]
mod handlers;

#[tokio::test]
async fn the_example_worker_runs_its_typed_commands_beside_an_api() {
    let env = Env::new();
    // An api with no handlers of its own: every type comes from the example worker.
    let api = TestApp::start_with(
        env.clone(),
        Role::Api,
        cmdbus_worker::Registry::new(),
        |_| {},
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let worker_base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(cmdbus::worker::run(
        env.config(),
        handlers::registry(),
        listener,
        shutdown.clone(),
    ));
    // Ready once it registered its types and consumes.
    common::wait_ready(&reqwest::Client::new(), &worker_base).await;

    let id = api
        .submit_ok(json!({"type": "invoice.total", "payload": {
            "currency": "EUR",
            "lines": [{"quantity": 3, "unit_cents": 250}, {"quantity": 1, "unit_cents": 99}],
        }}))
        .await;
    let done = api.wait_status(id, "success", T).await;
    assert_eq!(
        done["result"],
        json!({"currency": "EUR", "total_cents": 849})
    );
    let id = api
        .submit_ok(json!({"type": "text.digest", "payload": {"text": "abc"}}))
        .await;
    let done = api.wait_status(id, "success", T).await;
    assert_eq!(
        done["result"]["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    let (status, problem) = api
        .submit(json!({"type": "invoice.total", "payload": {
            "currency": "GBP",
            "lines": [{"quantity": 0, "unit_cents": 1}, {"quantity": 1, "unit_cents": -5}],
        }}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid_payload");
    let mut pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["pointer"].as_str())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            "/payload/currency",
            "/payload/lines/0/quantity",
            "/payload/lines/1/unit_cents"
        ],
        "{problem}"
    );
    let (status, problem) = api
        .submit(json!({"type": "text.digest", "payload": {"text": "abc", "rounds": 0}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    shutdown.cancel();
    worker
        .await
        .expect("worker task")
        .expect("worker ended with an error");
    api.stop_keeping_env().await;
    env.teardown(&handlers::registry().names())
        .await
        .expect("teardown");
}
