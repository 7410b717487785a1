//! The client as a script uses it: `--json` output that parses, a minted token that works,
//! `retry --dry-run` that counts without replaying, and clear errors for bad input.

use super::{T, run};
use crate::common::{TestApp, id_of};
use serde_json::json;

#[tokio::test]
async fn json_output_is_one_document_per_line_for_submit_get_list_and_watch() {
    let app = TestApp::start().await;
    let submitted = run(
        &app,
        &[
            "--json",
            "submit",
            "demo.sleep",
            "--payload",
            r#"{"ms":400,"steps":2}"#,
            "--idempotency-key",
            "k1",
        ],
    )
    .await;
    assert_eq!(submitted.code, 0, "{submitted:?}");
    let view = submitted.document();
    assert_eq!(view["type"], "demo.sleep");
    let id = id_of(&view);

    // The same key again answers the same command.
    let again = run(
        &app,
        &[
            "submit",
            "demo.sleep",
            "--json",
            "--payload",
            r#"{"ms":400,"steps":2}"#,
            "--idempotency-key",
            "k1",
        ],
    )
    .await;
    assert_eq!(id_of(&again.document()), id, "{again:?}");

    let watched = run(&app, &["watch", "--json", &id.to_string()]).await;
    assert_eq!(watched.code, 0, "{watched:?}");
    let changes = watched.documents();
    let last = changes.last().expect("at least one change");
    assert_eq!(last["status"], "success", "{watched:?}");
    assert_eq!(last["result"], json!({"slept_ms": 400, "steps": 2}));
    assert!(
        changes
            .windows(2)
            .all(|pair| pair[0]["version"].as_i64() < pair[1]["version"].as_i64()),
        "each change once, in order: {watched:?}"
    );

    let got = run(&app, &["get", &id.to_string(), "--json"]).await;
    let got = got.document();
    assert_eq!(got["status"], "success");
    assert_eq!(got["payload"], json!({"ms": 400, "steps": 2}));

    let listed = run(
        &app,
        &[
            "list",
            "--json",
            "--type",
            "demo.sleep",
            "--status",
            "success",
        ],
    )
    .await;
    let page = listed.document();
    assert_eq!(page["items"][0]["id"], id.to_string(), "{listed:?}");
    assert!(page["since"].is_string());

    // A person gets a line per command.
    let table = run(&app, &["list"]).await;
    assert!(table.stdout.starts_with(&id.to_string()), "{table:?}");
    assert!(table.stdout.contains(" success "), "{table:?}");

    let waited = run(
        &app,
        &[
            "--json",
            "submit",
            "demo.echo",
            "--payload",
            "[1,2]",
            "--wait",
        ],
    )
    .await;
    assert_eq!(waited.code, 0, "{waited:?}");
    let done = waited.document();
    assert_eq!(done["status"], "success");
    assert_eq!(done["result"], json!([1, 2]));
    app.stop().await;
}

#[tokio::test]
async fn a_minted_token_reads_its_subject_and_cannot_submit() {
    let app = TestApp::start().await;
    let mine = app
        .submit_ok(json!({"type": "demo.echo", "payload": 1, "subject": "alice"}))
        .await;
    let theirs = app
        .submit_ok(json!({"type": "demo.echo", "payload": 2, "subject": "bob"}))
        .await;
    let minted = run(&app, &["tokens", "mint", "--sub", "alice", "--ttl", "10m"]).await;
    assert_eq!(minted.code, 0, "{minted:?}");
    let token = minted.stdout.trim().to_owned();
    assert!(minted.stderr.starts_with("expires at "), "{minted:?}");

    let as_alice = |args: &[&str]| {
        let mut all = vec!["--key", token.as_str()];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let read = as_alice(&["get", "--json", &mine.to_string()]);
    let read = run(&app, &read.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(read.code, 0, "{read:?}");
    assert_eq!(id_of(&read.document()), mine);

    let other = as_alice(&["get", &theirs.to_string()]);
    let other = run(&app, &other.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(other.code, 1, "{other:?}");
    assert!(
        other.stderr.starts_with("error: Not Found (not_found): "),
        "{other:?}"
    );

    let submit = as_alice(&["submit", "demo.echo"]);
    let submit = run(&app, &submit.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(submit.code, 1, "{submit:?}");
    assert!(
        submit.stderr.starts_with("error: Forbidden (forbidden): "),
        "{submit:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn retry_dry_run_counts_without_replaying_then_retry_replays() {
    let app = TestApp::start().await;
    let mut failed = Vec::new();
    for _ in 0..2 {
        let id = app
            .submit_ok(json!({"type": "demo.fail", "payload": {"permanent": true}}))
            .await;
        failed.push(app.wait_status(id, "fail", T).await);
    }
    let counted = run(
        &app,
        &["retry", "--type", "demo.fail", "--dry-run", "--json"],
    )
    .await;
    assert_eq!(counted.code, 0, "{counted:?}");
    // (`until`, the bound the count was made with, is the database's time: not compared.)
    let document = counted.document();
    assert_eq!(
        (&document["matched"], &document["retried"]),
        (&json!(2), &json!(0)),
        "{document}"
    );
    assert!(document["until"].is_string(), "{document}");
    for view in &failed {
        let now = run(&app, &["get", "--json", view["id"].as_str().expect("id")]).await;
        assert_eq!(
            now.document()["version"],
            view["version"],
            "a dry run changed it"
        );
    }
    let said = run(&app, &["retry", "--type", "demo.fail", "--dry-run"]).await;
    assert_eq!(said.stdout.trim(), "2 matched, nothing replayed (dry run)");

    let replayed = run(&app, &["retry", "--type", "demo.fail", "--json"]).await;
    let document = replayed.document();
    assert_eq!(
        (&document["matched"], &document["retried"]),
        (&json!(2), &json!(2)),
        "{document}"
    );
    // Once it failed again, one command replays by id.
    let first = crate::common::id_of(&failed[0]);
    let before = failed[0]["version"].as_i64();
    let again = app
        .wait_until(first, T, |view| {
            view["status"] == "fail" && view["version"].as_i64() > before
        })
        .await
        .expect("failed again");
    let one = run(&app, &["retry", "--json", &first.to_string()]).await;
    assert_eq!(one.code, 0, "{one:?}");
    // The answer is the row after the replay (a fast worker may have run it already).
    assert!(
        one.document()["version"].as_i64() > again["version"].as_i64(),
        "{one:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_clear_error_with_exit_1_and_nothing_submitted() {
    let app = TestApp::start().await;
    let bad = run(&app, &["submit", "demo.echo", "--payload", "{bad"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr
            .starts_with("error: the payload (--payload) is not JSON: key must be a string"),
        "{bad:?}"
    );
    assert!(bad.stdout.is_empty());
    let missing = run(
        &app,
        &["submit", "demo.echo", "--payload", "@/nonexistent.json"],
    )
    .await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .starts_with("error: cannot read the payload file /nonexistent.json"),
        "{missing:?}"
    );
    let unknown = run(&app, &["submit", "no.such.type", "--wait"]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .starts_with("error: Unprocessable Entity (unknown_type): "),
        "{unknown:?}"
    );
    // A refused WebSocket upgrade reads like any other problem.
    let refused = run(&app, &["--key", "cmdbus_wrong", "watch", "--all"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .starts_with("error: Unauthorized (unauthorized): "),
        "{refused:?}"
    );
    let usage = run(&app, &["retry", "--dry-run"]).await;
    assert_eq!(usage.code, 1, "a usage error is not `fail`: {usage:?}");
    assert_eq!(app.count("select count(*) from commands").await, 0);
    app.stop().await;
}
