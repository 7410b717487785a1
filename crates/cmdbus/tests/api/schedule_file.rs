//! Schedules declared at startup (`CMDBUS_SCHEDULES`): declared, upserted by name on a restart
//! with a changed file (same ids, the operator's pause kept), and a file with a bad schedule
//! stops the start, naming it.

use super::*;
use crate::schedules::post_json;

#[tokio::test]
async fn a_startup_file_declares_schedules_and_a_restart_upserts_them_by_name() {
    let env = Env::new();
    let path = std::env::temp_dir().join(format!("{}-schedules.json", env.namespace));
    let write = |schedules: Value| {
        std::fs::write(&path, json!({ "schedules": schedules }).to_string()).expect("write file")
    };
    write(json!([
        {"name": "nightly", "type": "demo.echo", "payload": {"v": 1}, "cron": "0 3 * * *",
         "timezone": "Europe/Paris", "missed": "catch_up_once"},
        {"name": "hourly", "tenant": "default", "type": "demo.noop", "cron": "0 * * * *"},
    ]));
    let file = path.clone();
    let mut app = TestApp::start_with(env, Role::Api, cmdbus::builtin_registry(), move |config| {
        config.schedules = Some(file);
    })
    .await;
    let listed = app.get_json("/v1/schedules").await;
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed}");
    let nightly = items
        .iter()
        .find(|s| s["name"] == "nightly")
        .expect("nightly")
        .clone();
    assert_eq!(nightly["declared"], true);
    assert_eq!(nightly["missed"], "catch_up_once");
    assert_eq!(nightly["timezone"], "Europe/Paris");
    let hourly = items
        .iter()
        .find(|s| s["name"] == "hourly")
        .expect("hourly")
        .clone();
    let (status, _) = post_json(
        &app,
        &format!("/v1/schedules/{}/pause", hourly["id"].as_str().expect("id")),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Changed in the file: the restart updates them in place, and keeps the operator's pause.
    write(json!([
        {"name": "nightly", "type": "demo.echo", "payload": {"v": 2}, "cron": "30 4 * * *",
         "timezone": "Europe/Paris"},
        {"name": "hourly", "type": "demo.noop", "cron": "0 * * * *"},
    ]));
    app.restart().await;
    let listed = app.get_json("/v1/schedules").await;
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed}");
    let updated = items
        .iter()
        .find(|s| s["name"] == "nightly")
        .expect("nightly");
    assert_eq!(updated["id"], nightly["id"]);
    assert_eq!(updated["payload"], json!({"v": 2}));
    assert_eq!(updated["cron"], "30 4 * * *");
    assert_eq!(updated["missed"], "skip");
    assert_ne!(
        updated["next_run_at"], nightly["next_run_at"],
        "a new pattern, a new next tick"
    );
    let still = items
        .iter()
        .find(|s| s["name"] == "hourly")
        .expect("hourly");
    assert_eq!(
        (still["id"].clone(), still["paused"].clone()),
        (hourly["id"].clone(), json!(true))
    );

    // A file with a refused schedule stops the start, naming it, and changes nothing.
    write(
        json!([{"name": "broken", "type": "demo.noop", "cron": "0 0 31 2 * *", "timezone": "Nowhere"}]),
    );
    let mut config = app.env.config();
    config.schedules = Some(path.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = cmdbus::run(
        Role::Api,
        config,
        cmdbus::builtin_registry(),
        listener,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("a refused schedule stops the start");
    let message = format!("{error:#}");
    assert!(
        message.contains("\"broken\"") && message.contains("Nowhere"),
        "{message}"
    );
    assert_eq!(app.count("select count(*) from schedules").await, 2);
    std::fs::remove_file(&path).expect("remove file");
    app.stop().await;
}
