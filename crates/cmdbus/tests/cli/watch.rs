//! `cmdbus watch`: live changes as JSON lines, a resume from the last cursor across a server
//! restart, and the long-poll where no WebSocket is served.

use super::{T, cmdbus, run};
use crate::common::{Env, TestApp, id_of};
use cmdbus::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::ChildStdout;
use uuid::Uuid;

/// Reads the watcher's lines until `id` shows `success`.
async fn until_success(lines: &mut Lines<BufReader<ChildStdout>>, id: Uuid) {
    loop {
        let line = tokio::time::timeout(T, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{id} not shown in time"))
            .expect("stdout")
            .expect("watch still running");
        let view: Value = serde_json::from_str(&line).expect("one JSON document per line");
        if view["id"] == id.to_string() && view["status"] == "success" {
            return;
        }
    }
}

#[tokio::test]
async fn watch_all_follows_live_and_resumes_across_a_restart() {
    let mut app = TestApp::start().await;
    let mut child = cmdbus(&app, &["watch", "--all", "--json"])
        .spawn()
        .expect("cmdbus runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let subscribed = tokio::time::timeout(T, stderr.next_line())
        .await
        .expect("subscribed in time")
        .expect("stderr")
        .expect("a line");
    assert!(
        subscribed.starts_with("watching from cursor "),
        "{subscribed}"
    );

    let before = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1}))
        .await;
    until_success(&mut stdout, before).await;

    // A graceful restart closes the socket (1012): the watcher reconnects by itself and resumes
    // from its last cursor.
    app.restart().await;
    let after = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2}))
        .await;
    until_success(&mut stdout, after).await;
    let note = tokio::time::timeout(T, stderr.next_line())
        .await
        .expect("a note in time")
        .expect("stderr")
        .expect("a line");
    assert!(note.starts_with("connection lost (closed 1012"), "{note}");
    child.kill().await.expect("stopped");
    app.stop().await;
}

#[tokio::test]
async fn watch_of_ids_follows_the_change_feed_where_no_websocket_is_served() {
    // The api role serves no `/v1/ws`.
    let env = Env::new();
    let api = TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
    let worker = TestApp::start_with(env, Role::Worker, cmdbus::builtin_registry(), |_| {}).await;
    let mut ids = vec![
        api.submit_ok(json!({"type": "demo.sleep", "payload": {"ms": 400, "steps": 2}}))
            .await,
    ];
    // More than one long-poll per id could follow (a key holds 100 at most).
    for n in 0..120 {
        ids.push(
            api.submit_ok(json!({"type": "demo.echo", "payload": n}))
                .await,
        );
    }
    let mut args = vec!["watch".to_owned(), "--json".to_owned()];
    args.extend(ids.iter().map(Uuid::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let watched = run(&api, &args).await;
    assert_eq!(watched.code, 0, "{watched:?}");
    assert!(watched.stderr.contains("change feed"), "{watched:?}");
    let views = watched.documents();
    for id in &ids {
        let mine: Vec<i64> = views
            .iter()
            .filter(|view| id_of(view) == *id)
            .filter_map(|view| view["version"].as_i64())
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{id}: {mine:?}");
        let last = views
            .iter()
            .rfind(|view| id_of(view) == *id)
            .unwrap_or_else(|| panic!("{id} not shown: {watched:?}"));
        assert_eq!(last["status"], "success", "{watched:?}");
    }
    worker.stop_keeping_env().await;
    api.stop().await;
}
