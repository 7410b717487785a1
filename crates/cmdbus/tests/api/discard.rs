//! Discard: a parked failure dropped for good, one (`409` for any other state) or in bulk (the
//! action takes what its dry run counted, and is audited); its parked message, consumed later
//! by a lane worker, changes nothing.

use super::*;
use crate::ops::{get_json, post_json, wait_queue};

/// `n` permanent failures of `demo.fail`, parked in `exceptions1` (which then holds `held`
/// messages: a discarded failure's stays until a lane worker consumes it).
async fn parked(app: &TestApp, n: usize, held: u64) -> Vec<uuid::Uuid> {
    let fail = || app.submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}));
    let ids = join_all((0..n).map(|_| fail())).await;
    for id in &ids {
        app.wait_status(*id, "fail", T).await;
    }
    let lane = format!("{}.cmd.demo.fail.exceptions1", app.env.namespace);
    wait_queue(app, &lane, |q| q["ready"].as_u64() == Some(held)).await;
    ids
}

#[tokio::test]
async fn a_discarded_failure_is_dropped_for_good_and_its_parked_message_changes_nothing() {
    let app = TestApp::start().await;
    let ids = parked(&app, 3, 3).await;
    let (status, discarded) = post_json(
        &app,
        &format!("/v1/commands/{}/discard", ids[0]),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    let version = discarded["version"].clone();

    // Only a parked failure: not twice, not a success, not an unknown id.
    let (status, again) = post_json(
        &app,
        &format!("/v1/commands/{}/discard", ids[0]),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["code"], "conflict");
    let done = app.submit_ok(json!({"type": "demo.noop"})).await;
    app.wait_status(done, "success", T).await;
    let (status, _) = post_json(&app, &format!("/v1/commands/{done}/discard"), json!(null)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = post_json(
        &app,
        &format!("/v1/commands/{unknown}/discard"),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Never replayed.
    let (status, _) = post_json(&app, &format!("/v1/commands/{}/retry", ids[0]), json!(null)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A lane worker consumes every parked message: the other two run again (and fail into
    // lane 2), the discarded one's claims nothing.
    let lane1 = TestApp::start_with(
        app.env.clone(),
        Role::Worker,
        cmdbus::builtin_registry(),
        |config| config.lane = cmdbus::LaneArg::Exceptions1,
    )
    .await;
    let lane2 = format!("{}.cmd.demo.fail.exceptions2", app.env.namespace);
    wait_queue(&app, &lane2, |q| q["ready"] == 2).await;
    let lane = format!("{}.cmd.demo.fail.exceptions1", app.env.namespace);
    wait_queue(&app, &lane, |q| {
        q["ready"] == 0 && q["unacked"].as_u64().unwrap_or(0) == 0
    })
    .await;
    let view = get_json(&app, &format!("/v1/commands/{}", ids[0])).await;
    assert_eq!(view["status"], "discarded");
    assert_eq!(
        view["version"], version,
        "changed after the discard: {view}"
    );
    assert_eq!(view["attempt"], 1);
    for id in &ids[1..] {
        app.wait_until(*id, T, |v| v["attempt"] == 2)
            .await
            .expect("re-run in lane 1");
    }
    lane1.stop_keeping_env().await;
    app.stop().await;
}

#[tokio::test]
async fn bulk_discard_takes_what_its_dry_run_counted_and_is_audited() {
    let app = TestApp::start().await;
    parked(&app, 4, 4).await;
    let filter =
        json!({"type": "demo.fail", "lane": "exceptions1", "error_code": "demo_permanent"});
    let mut dry = filter.clone();
    dry["dry_run"] = json!(true);
    let (status, preview) = post_json(&app, "/v1/commands/discard", dry).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let failed = app
        .count("select count(*) from commands where status = 'fail'")
        .await;
    assert_eq!(preview["matched"], failed, "{preview}");
    assert_eq!(preview["discarded"], 0);

    // More fail after the preview: the action, bound to it, leaves them.
    let later = parked(&app, 6, 10).await;
    let mut action = filter.clone();
    action["until"] = preview["until"].clone();
    action["limit"] = preview["matched"].clone();
    let (status, done) = post_json(&app, "/v1/commands/discard", action).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["discarded"], preview["matched"], "{done}");
    assert_eq!(
        app.count("select count(*) from commands where status = 'discarded'")
            .await,
        failed
    );
    let spared: Vec<String> = later.iter().map(|id| format!("'{id}'")).collect();
    assert_eq!(
        app.count(&format!(
            "select count(*) from commands where status = 'fail' and id in ({})",
            spared.join(",")
        ))
        .await,
        6
    );
    // A selection, bounded by `limit`; a wrong lane is refused.
    let (status, some) = post_json(
        &app,
        "/v1/commands/discard",
        json!({"ids": later[..3], "limit": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{some}");
    assert_eq!(
        (&some["matched"], &some["discarded"]),
        (&json!(3), &json!(2))
    );
    let (status, _) = post_json(&app, "/v1/commands/discard", json!({"lane": "main"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let audit = get_json(&app, "/v1/audit").await;
    let rows = audit["items"].as_array().expect("items");
    assert_eq!(rows.len(), 2, "{audit}");
    assert_eq!(
        (&rows[0]["action"], &rows[0]["count"]),
        (&json!("discard"), &json!(2))
    );
    assert_eq!(rows[1]["count"], preview["matched"]);
    assert_eq!(rows[1]["filter"]["lane"], "exceptions1");
    assert_eq!(rows[1]["filter"]["until"], preview["until"]);
    app.stop().await;
}
