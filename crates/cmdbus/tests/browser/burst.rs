//! A 5,000-command burst with the All view open: the page keeps up with the server and answers
//! input while it lasts. The test asserts only what must hold (every command reaches its final
//! state in the page, the table stays bounded) and prints the figures: how long after the last
//! submit the page showed the burst's end (and the server finished it), the latency of clicks
//! during the burst, the page's long tasks, rows and nodes in the DOM, and the JS heap.

use super::*;
use futures_util::{StreamExt, stream};
use std::time::Duration;

const BURST: usize = 5_000;
/// Submits in flight at once.
const IN_FLIGHT: usize = 32;

/// A button that records how long each click waited for its handler (the event's timestamp to
/// the handler's start), and a long-task observer.
const PROBE: &str = r#"
    window.__probe = { clicks: [], longtasks: [] };
    const btn = document.createElement('button');
    btn.id = 'probe';
    btn.textContent = 'probe';
    btn.style.cssText = 'position:fixed;left:4px;bottom:4px;z-index:99';
    btn.addEventListener('click', (e) => window.__probe.clicks.push(performance.now() - e.timeStamp));
    document.body.append(btn);
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__probe.longtasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
    return true;"#;

/// How many of the burst's ids (`window.__burst`) the page holds in a final state, and whether
/// every row it shows is final.
const BURST_STATE: &str = r#"
    const held = window.cmdbus.state.commands;
    let done = 0;
    for (const id of window.__burst) {
      const v = held.get(id);
      if (v && ['success', 'fail', 'cancelled'].includes(v.status)) done++;
    }
    const rows = [...document.querySelectorAll('[data-testid="row"]')];
    return { done, rows_final: rows.every((r) => ['success', 'fail', 'cancelled'].includes(r.dataset.status)) };"#;

const FIGURES: &str = r#"
    const p = window.__probe;
    const sorted = (xs) => [...xs].sort((a, b) => a - b);
    const q = (xs, f) => (xs.length ? sorted(xs)[Math.min(xs.length - 1, Math.floor(f * xs.length))] : 0);
    return {
      clicks: p.clicks.length,
      click_p50_ms: q(p.clicks, 0.5), click_max_ms: q(p.clicks, 1),
      longtasks: p.longtasks.length,
      longtask_total_ms: p.longtasks.reduce((a, b) => a + b, 0),
      longtask_max_ms: q(p.longtasks, 1),
      rows: document.querySelectorAll('[data-testid="row"]').length,
      nodes: document.getElementsByTagName('*').length,
      frames: window.cmdbus.frames,
      heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
    };"#;

#[tokio::test]
async fn a_5000_command_burst_keeps_the_open_all_view_responsive() {
    let app = TestApp::start().await;
    let browser = Browser::launch(DESKTOP).await;
    browser.open_signed_in(&app.url("/")).await;
    browser.wait_conn("live").await;
    browser.js(PROBE, vec![]).await;

    let http = app.http.clone();
    let url = app.url("/v1/commands");
    let mut submits = Some(tokio::spawn(async move {
        let ids: Vec<String> = stream::iter(0..BURST)
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let view: Value = http
                        .post(&url)
                        .json(&json!({"type": "demo.noop", "payload": null}))
                        .send()
                        .await
                        .expect("submit")
                        .error_for_status()
                        .expect("accepted")
                        .json()
                        .await
                        .expect("a view");
                    view["id"].as_str().expect("an id").to_owned()
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        (ids, Instant::now())
    }));

    // Click the probe through the burst (every 250 ms: a sampling interval, not a wait for
    // anything), timing each click's round trip through the driver too; note when the last
    // submit was answered, when the server finished the burst and when the page showed it.
    let mut round_trips: Vec<f64> = Vec::new();
    let mut last_submit = None;
    let mut server_done = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let page_done = loop {
        assert!(
            Instant::now() < deadline,
            "the page never showed the burst's end"
        );
        let click = Instant::now();
        browser.click("#probe").await;
        round_trips.push(click.elapsed().as_secs_f64() * 1000.0);
        if submits.as_ref().is_some_and(|task| task.is_finished()) {
            let (ids, at) = submits
                .take()
                .expect("the task")
                .await
                .expect("every submit");
            assert_eq!(ids.len(), BURST);
            browser
                .js(
                    "window.__burst = arguments[0]; return true;",
                    vec![json!(ids)],
                )
                .await;
            last_submit = Some(at);
        }
        if let Some(last) = last_submit {
            if server_done.is_none() {
                let left = app
                    .count("select count(*) from commands where status not in ('success', 'fail', 'cancelled')")
                    .await;
                if left == 0 {
                    server_done = Some(last.elapsed());
                }
            }
            let page = browser.js(BURST_STATE, vec![]).await;
            if page["done"] == json!(BURST) && page["rows_final"] == json!(true) {
                break last.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await; // sampling interval
    };
    let figures = browser.js(FIGURES, vec![]).await;
    round_trips.sort_by(f64::total_cmp);
    let server_done = server_done.map_or(page_done, |at| at);
    println!(
        "burst of {BURST} demo.noop with the All view open: after the last submit, the server \
         finished in {:.1} s and the page showed the end in {:.1} s; clicks during the burst \
         (driver round trip) p50 {:.0} ms, max {:.0} ms; page figures {figures}",
        server_done.as_secs_f64(),
        page_done.as_secs_f64(),
        round_trips[round_trips.len() / 2],
        round_trips[round_trips.len() - 1],
    );
    let rows = figures["rows"].as_u64().expect("rows");
    assert!(rows <= 150, "the table stays bounded: {rows} rows");
    assert!(rows > 0, "the table shows the newest commands");
    browser.close().await;
    app.stop().await;
}
