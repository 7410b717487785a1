//! Pushes cost only the sockets they go to: idle sockets that follow other commands stay open
//! and silent through a bulk replay; a socket sent more changes than its queue holds is closed
//! (`1013`) and nobody else is; and the cursors handed out in the middle of a burst, or by a
//! `subscribed` answered while changes were still queued, miss nothing on resume.

use crate::common::{TestApp, WsClient, id_of, process::change_behind_the_back};
use serde_json::{Value, json};
use std::{collections::HashSet, time::Duration};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// Inserts `count` finished commands in one transaction, so that the notifier's database
/// reader publishes them in one pass (no event is published for them); returns their ids.
async fn insert_finished(executor: &mut sqlx::PgConnection, count: i64) -> Vec<Uuid> {
    sqlx::query_scalar(
        "insert into commands (id, tenant, type, payload, result, status, finished_at)
         select gen_random_uuid(), $1, 'demo.echo', jsonb_build_object('n', n),
                jsonb_build_object('n', n), 'success', now()
           from generate_series(1, $2) n
         returning id",
    )
    .bind(cmdbus_domain::DEFAULT_TENANT)
    .bind(count)
    .fetch_all(executor)
    .await
    .expect("insert commands")
}

/// Subscribes to these ids and waits for the answer.
async fn follow(ws: &mut WsClient, ids: &[Uuid]) {
    ws.send(json!({"op": "subscribe", "ids": ids})).await;
    let reply = ws.next_json(T).await.expect("subscribe reply");
    assert_eq!(reply["op"], "subscribed", "{reply}");
}

/// Whether `message` is a late copy of a change of `id` the socket held when it subscribed (a
/// version up to `known`): the change's event may reach the notifier after the subscribe, and
/// a copy is not news.
fn late_copy(message: &Value, id: Uuid, known: i64) -> bool {
    message["op"] == "command"
        && id_of(&message["command"]) == id
        && message["command"]["version"]
            .as_i64()
            .is_some_and(|version| version <= known)
}

/// Still open, and sent nothing since it subscribed but late copies of what `id` was at version
/// `known`: the answer to another subscribe is the next other message.
async fn open_and_silent(ws: &mut WsClient, id: Uuid, known: i64, what: &str) {
    ws.send(json!({"op": "subscribe", "ids": [id]})).await;
    loop {
        match ws.next_json(T).await {
            Ok(reply) if late_copy(&reply, id, known) => {}
            Ok(reply) => {
                assert_eq!(reply["op"], "subscribed", "{what} was sent {reply}");
                return;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// An idle socket read in the background, as a browser would (answering the server's pings),
/// recording whatever text it is sent until `stop`.
struct Idle {
    stop: tokio_util::sync::CancellationToken,
    reader: tokio::task::JoinHandle<(WsClient, Vec<String>, Option<String>)>,
}

impl Idle {
    fn read(mut ws: WsClient) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let reader = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut sent = Vec::new();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return (ws, sent, None),
                        text = ws.next_text(Duration::from_secs(3600)) => match text {
                            Ok(text) => sent.push(text),
                            Err(error) => return (ws, sent, Some(error.to_string())),
                        },
                    }
                }
            }
        });
        Self { stop, reader }
    }

    /// The socket, after checking that it was sent nothing and is still open.
    async fn open_and_silent(self, id: Uuid, known: i64, what: &str) -> WsClient {
        self.stop.cancel();
        let (mut ws, sent, ended) = self.reader.await.expect("reader");
        assert_eq!(ended, None, "{what} ended");
        let news: Vec<&String> = sent
            .iter()
            .filter(|text| {
                serde_json::from_str::<Value>(text)
                    .map_or(true, |message| !late_copy(&message, id, known))
            })
            .collect();
        assert!(news.is_empty(), "{what} was sent {news:?}");
        open_and_silent(&mut ws, id, known, what).await;
        ws
    }
}

/// Idle sockets that stayed open in this test, where every change used to visit every socket.
const IDLE: usize = 1_000;
/// Failed commands replayed at once.
const REPLAYED: i64 = 2_000;

/// Inserts `count` failed `demo.noop` commands in one transaction; returns their ids.
async fn insert_failed(pool: &sqlx::PgPool, count: i64) -> Vec<Uuid> {
    sqlx::query_scalar(
        "insert into commands (id, tenant, type, payload, status, attempt, error, finished_at)
         select gen_random_uuid(), $1, 'demo.noop', 'null', 'fail', 1,
                jsonb_build_object('code', 'demo_permanent', 'message', 'failed',
                                   'retryable', false), now()
           from generate_series(1, $2) n
         returning id",
    )
    .bind(cmdbus_domain::DEFAULT_TENANT)
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("insert failed commands")
}

/// On all the cores, as in production: publishers run beside the sockets' tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_following_an_unrelated_command_stay_open_and_silent_through_a_bulk_replay() {
    let app = TestApp::start().await;
    let replayed = insert_failed(&app.pool, REPLAYED).await;
    let unrelated = app.submit_ok(json!({"type": "demo.echo"})).await;
    let known = app.wait_status(unrelated, "success", T).await["version"]
        .as_i64()
        .expect("a version");
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut ws = WsClient::connect(&app.ws_url()).await;
        follow(&mut ws, &[unrelated]).await;
        idle.push(Idle::read(ws));
    }
    // A socket that follows all sees every replayed command succeed.
    let mut watcher = WsClient::connect(&app.ws_url()).await;
    watcher.subscribe_all(None).await;
    let watched = tokio::spawn(async move {
        let mut finished = HashSet::new();
        while finished.len() < REPLAYED as usize {
            let message = watcher.next_json(T).await?;
            if message["op"] == "command" && message["command"]["status"] == "success" {
                finished.insert(id_of(&message["command"]));
            }
        }
        watcher.close().await;
        anyhow::Ok(finished)
    });

    let replay: Value = app
        .http
        .post(app.url("/v1/commands/retry"))
        .json(&json!({"type": "demo.noop", "dry_run": false}))
        .send()
        .await
        .expect("bulk replay")
        .json()
        .await
        .expect("json");
    assert_eq!(replay["retried"], REPLAYED, "{replay}");
    let watched = watched.await.expect("watcher");
    for (n, idle) in idle.into_iter().enumerate() {
        let ws = idle
            .open_and_silent(unrelated, known, &format!("idle socket {n}"))
            .await;
        ws.close().await;
    }
    let finished = watched.expect("every replay pushed to the socket that follows all");
    assert!(replayed.iter().all(|id| finished.contains(id)));
    app.stop().await;
}

/// A legal change (`queue` → `cancelled`) made in SQL: no event is ever published for it.
const CANCEL: &str = "status = 'cancelled', finished_at = now()";

#[tokio::test]
async fn a_socket_sent_more_than_its_queue_holds_is_closed_1013_and_nobody_else_is() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let followed = api.submit_queued().await;
    let unrelated = api.submit_queued().await;
    let known = api.get_json(&format!("/v1/commands/{unrelated}")).await["version"]
        .as_i64()
        .expect("a version");
    let mut flooded = WsClient::connect(&notifier.ws_url()).await;
    flooded.subscribe_all(None).await;
    let mut follower = WsClient::connect(&notifier.ws_url()).await;
    follow(&mut follower, &[followed]).await;
    let mut idle = WsClient::connect(&notifier.ws_url()).await;
    follow(&mut idle, &[unrelated]).await;

    // More changes in one pass of the database reader than one socket's queue holds.
    let mut tx = api.pool.begin().await.expect("transaction");
    insert_finished(&mut tx, 6_000).await;
    let version = change_behind_the_back(&mut tx, followed, CANCEL).await;
    tx.commit().await.expect("commit");

    let (code, reason, _) = flooded
        .closed(T)
        .await
        .expect("the flooded socket is closed");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("resume with since"), "{reason}");
    let pushed = follower.next_json(T).await.expect("the follower's change");
    assert_eq!(
        (&pushed["op"], id_of(&pushed["command"])),
        (&json!("command"), followed)
    );
    assert_eq!(pushed["command"]["version"], version);
    open_and_silent(&mut follower, followed, version, "the follower").await;
    open_and_silent(&mut idle, unrelated, known, "the idle socket").await;
    for ws in [follower, idle] {
        ws.close().await;
    }
    notifier.stop_keeping_env().await;
    api.stop().await;
}

/// Reads command messages (and answers) until every id of `owed` was seen, adding to `seen`.
async fn read_until_seen(ws: &mut WsClient, owed: &[Uuid], seen: &mut HashSet<Uuid>) {
    let deadline = tokio::time::Instant::now() + T;
    while !owed.iter().all(|id| seen.contains(id)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let missing = owed.iter().filter(|id| !seen.contains(id)).count();
        let message = ws
            .next_json(left)
            .await
            .unwrap_or_else(|error| panic!("{missing} of {} never came: {error}", owed.len()));
        if message["op"] == "command" {
            seen.insert(id_of(&message["command"]));
        }
    }
}

#[tokio::test]
async fn a_client_that_leaves_at_the_first_cursor_of_a_burst_and_resumes_from_it_misses_nothing() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let mut client = WsClient::connect(&notifier.ws_url()).await;
    client.subscribe_all(None).await;
    let subscribed = client.cursor.clone();
    // Bursts of 500 changes, each read by its own pass of the database reader (one every
    // 200 ms), while the client reads: each pass records a horizon covering its whole burst.
    let inserter = tokio::spawn({
        let pool = api.pool.clone();
        async move {
            let mut owed = Vec::new();
            for _ in 0..4 {
                let mut conn = pool.acquire().await.expect("connection");
                owed.extend(insert_finished(&mut conn, 500).await);
                tokio::time::sleep(Duration::from_millis(400)).await; // one pass per burst
            }
            owed
        }
    });
    // Leave at the first new cursor: it must come after every change it covers.
    let mut seen = HashSet::new();
    let cursor = loop {
        let message = client.next_json(T).await.expect("the bursts");
        assert_eq!(message["op"], "command", "{message}");
        seen.insert(id_of(&message["command"]));
        if message["cursor"].is_string() && client.cursor != subscribed {
            break client.cursor.clone().expect("a cursor");
        }
    };
    client.close().await;
    let owed = inserter.await.expect("inserter");

    let mut back = WsClient::connect(&notifier.ws_url()).await;
    let replayed = back.subscribe_all(Some(&cursor)).await;
    seen.extend(replayed.iter().map(id_of));
    read_until_seen(&mut back, &owed, &mut seen).await;
    back.close().await;
    notifier.stop_keeping_env().await;
    api.stop().await;
}

#[tokio::test]
async fn a_subscribe_answered_in_the_middle_of_a_burst_hands_out_a_cursor_that_misses_nothing() {
    let (api, notifier) = TestApp::api_and_notifier().await;
    let mut client = WsClient::connect(&notifier.ws_url()).await;
    client.subscribe_all(None).await;
    let mut conn = api.pool.acquire().await.expect("connection");
    let owed = insert_finished(&mut conn, 3_000).await;
    drop(conn);
    let first = client.next_json(T).await.expect("the burst");
    let mut seen = HashSet::from([id_of(&first["command"])]);
    // Answered while most of the burst is still queued for this socket: its cursor must come
    // after every change it covers.
    client
        .send(json!({"op": "subscribe", "ids": [Uuid::now_v7()]}))
        .await;
    let cursor = loop {
        let message = client
            .next_json(T)
            .await
            .expect("the burst, then the answer");
        match message["op"].as_str() {
            Some("command") => {
                seen.insert(id_of(&message["command"]));
            }
            Some("subscribed") => break message["cursor"].as_str().map(str::to_owned),
            _ => panic!("unexpected {message}"),
        }
    };
    let cursor = cursor.expect("`subscribed` carries a cursor");
    client.close().await;

    let mut back = WsClient::connect(&notifier.ws_url()).await;
    let replayed = back.subscribe_all(Some(&cursor)).await;
    seen.extend(replayed.iter().map(id_of));
    read_until_seen(&mut back, &owed, &mut seen).await;
    back.close().await;
    notifier.stop_keeping_env().await;
    api.stop().await;
}
