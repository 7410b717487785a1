//! What the console reads: the list's search and filters, counts per status (exact from the
//! counters, or bounded and saying so), and the run statistics per minute, filled by a real
//! worker's finishes.

use super::*;
use crate::ops::get_json;

/// The ids of a list's page.
fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_finds_by_id_key_error_lane_and_time_and_counts_per_status() {
    let app = TestApp::start().await;
    let echo = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1, "ordering_key": "cart-9"}))
        .await;
    let response = app
        .http
        .post(app.url("/v1/commands"))
        .header("Idempotency-Key", "pay-42")
        .json(&json!({"type": "demo.noop"}))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let once = id_of(&response.json().await.expect("view"));
    let failed = app
        .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
        .await;
    let failed_view = app.wait_status(failed, "fail", T).await;
    app.wait_status(echo, "success", T).await;
    app.wait_status(once, "success", T).await;

    let search = |query: String| {
        let app = &app;
        async move { ids_of(&get_json(app, &format!("/v1/commands?{query}")).await) }
    };
    let fragment = echo.simple().to_string()[20..28].to_owned();
    assert_eq!(search(format!("q={echo}")).await, vec![echo.to_string()]);
    assert_eq!(
        search(format!("q={fragment}")).await,
        vec![echo.to_string()]
    );
    assert_eq!(
        search("ordering_key=cart-9".into()).await,
        vec![echo.to_string()]
    );
    assert_eq!(
        search("idempotency_key=pay-42".into()).await,
        vec![once.to_string()]
    );
    assert_eq!(
        search("error_code=demo_permanent".into()).await,
        vec![failed.to_string()]
    );
    assert_eq!(
        search("lane=exceptions1".into()).await,
        vec![failed.to_string()]
    );
    assert!(search("lane=exceptions2".into()).await.is_empty());
    let at = failed_view["created_at"].as_str().expect("created_at");
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("rfc 3339");
    let window = format!(
        "created_after={}&created_before={}",
        urlencode(&at.to_rfc3339()),
        urlencode(&(at + chrono::Duration::microseconds(1)).to_rfc3339())
    );
    assert_eq!(search(window).await, vec![failed.to_string()]);
    for bad in ["q=xyz", "q=12", "lane=main", "created_after=yesterday"] {
        let response = app
            .http
            .get(app.url(&format!("/v1/commands?{bad}")))
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // Counts: exact from the counters without a filter or with a type, bounded otherwise.
    let counts = get_json(&app, "/v1/commands/counts").await;
    assert_eq!(counts["exact"], true, "{counts}");
    assert_eq!(counts["counts"]["success"], 2, "{counts}");
    assert_eq!(counts["counts"]["fail"], 1, "{counts}");
    for status in ["new", "queue", "running", "cancelled", "discarded"] {
        assert_eq!(counts["counts"][status], 0, "{counts}");
    }
    let of_type = get_json(&app, "/v1/commands/counts?type=demo.fail").await;
    assert_eq!(of_type["counts"]["fail"], 1);
    assert_eq!(of_type["counts"]["success"], 0);
    let filtered = get_json(&app, "/v1/commands/counts?ordering_key=cart-9").await;
    assert_eq!(filtered["exact"], true, "{filtered}");
    assert_eq!(filtered["counts"]["success"], 1, "{filtered}");
    assert_eq!(filtered["counts"]["fail"], 0, "{filtered}");
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn stats_count_a_real_worker_s_runs_per_minute() {
    let app = TestApp::start().await;
    let mut ids = join_all((0..20).map(|_| app.submit_ok(json!({"type": "demo.noop"})))).await;
    ids.extend(
        join_all(
            (0..3).map(|_| {
                app.submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
            }),
        )
        .await,
    );
    // Fails once (a retry), then succeeds.
    ids.push(
        app.submit_ok(json!({"type": "demo.fail", "payload": {"times": 1}, "max_attempts": 3}))
            .await,
    );
    for id in &ids {
        app.wait_until(*id, T, |view| {
            matches!(view["status"].as_str(), Some("success" | "fail"))
        })
        .await
        .expect("finished");
    }
    // The runs as their attempts recorded them, per minute, type and outcome.
    let expected: Vec<(String, String, String, i64)> = sqlx::query_as(
        "select to_char(date_trunc('minute', a.finished_at) at time zone 'UTC',
                        'YYYY-MM-DD\"T\"HH24:MI'),
                c.type, a.outcome, count(*)
           from command_attempts a join commands c on c.id = a.command_id
          group by 1, 2, 3 order by 1, 2, 3",
    )
    .fetch_all(&app.pool)
    .await
    .expect("attempts");
    let stats = get_json(&app, "/v1/stats").await;
    assert_eq!(stats["bucket"], "minute");
    let mut read: Vec<(String, String, String, i64)> = Vec::new();
    for point in stats["series"].as_array().expect("series") {
        let at = point["at"].as_str().expect("at");
        for outcome in ["success", "fail", "retry", "cancelled", "lease_lost"] {
            let count = point[outcome].as_i64().expect("a count");
            if count > 0 {
                read.push((
                    at[..16].to_owned(),
                    point["type"].as_str().expect("type").to_owned(),
                    outcome.to_owned(),
                    count,
                ));
            }
        }
        let ms = &point["handler_ms"];
        let (p50, p99) = (ms["p50"].as_f64(), ms["p99"].as_f64());
        assert!(p50.is_some() && p50 <= p99, "{point}");
    }
    read.sort();
    assert_eq!(read, expected, "{stats}");
    let total: i64 = read.iter().map(|(.., n)| n).sum();
    assert_eq!(total, 25, "20 noop, 3 failures, a retry and its success");

    let noop = get_json(&app, "/v1/stats?bucket=hour&type=demo.noop").await;
    let series = noop["series"].as_array().expect("series");
    assert!(series.iter().all(|point| point["type"] == "demo.noop"));
    let successes: i64 = series.iter().filter_map(|p| p["success"].as_i64()).sum();
    assert_eq!(successes, 20, "{noop}");
    let response = app
        .http
        .get(app.url("/v1/stats?bucket=day"))
        .send()
        .await
        .expect("stats");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
