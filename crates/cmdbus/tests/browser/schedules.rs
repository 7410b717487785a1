//! The console's schedules list: a schedule made through the api shows with its pattern and
//! state, and an operator pauses and resumes it from its row.

use super::*;

#[tokio::test]
async fn the_console_lists_schedules_and_pauses_and_resumes_one() {
    let app = TestApp::start().await;
    let response = app
        .http
        .post(app.url("/v1/schedules"))
        .json(
            &json!({"name": "hourly report", "type": "demo.noop", "cron": "0 * * * *",
                      "timezone": "Europe/Paris"}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let id = response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let row = format!(r#"[data-testid="schedule-row"][data-id="{id}"]"#);
    let state = |want: &'static str| {
        format!(
            r#"const el = document.querySelector('{row} [data-testid="schedule-state"]');
               return el && el.textContent === '{want}' && el.closest('tr').textContent;"#
        )
    };

    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.click(r#"[data-testid="nav-schedules"]"#).await;
    let shown = browser
        .wait_for("the schedule's row", &state("active"), vec![])
        .await;
    let shown = shown.as_str().expect("row text");
    assert!(
        shown.contains("hourly report") && shown.contains("0 * * * *"),
        "{shown}"
    );
    assert!(shown.contains("Europe/Paris"), "{shown}");
    browser.screenshot("schedules.png").await;

    browser
        .click(&format!(r#"{row} [data-testid="schedule-pause"]"#))
        .await;
    browser
        .wait_for("the pause", &state("paused"), vec![])
        .await;
    assert_eq!(
        app.count("select count(*) from schedules where paused_at is not null")
            .await,
        1
    );
    browser
        .click(&format!(r#"{row} [data-testid="schedule-resume"]"#))
        .await;
    browser
        .wait_for("the resume", &state("active"), vec![])
        .await;
    assert_eq!(
        app.count("select count(*) from schedules where paused_at is not null")
            .await,
        0
    );

    browser.close().await;
    app.stop().await;
}
