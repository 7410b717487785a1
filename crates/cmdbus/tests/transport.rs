//! Transport bounds, tried against the real server: clients that stall or trickle their headers
//! or bodies, more idle connections than the process has descriptors, WebSocket peers that flood
//! pings or send huge frames, resumes that owe far too much; and what browsers are allowed to
//! do (hosts, origins, CORS, security headers), with a request id in every 5xx body.

mod common;

use common::{Env, TestApp, WsClient, process::Proc};
use futures_util::{StreamExt as _, future::join_all};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Most a probe may grow the server's resident memory.
const RSS_BOUND_MIB: u64 = 50;

/// Waits until the server closes `socket` (EOF or reset), reading past any response; `None`
/// when it is still open at `deadline`.
async fn closed_at(mut socket: TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that sends a request head a byte every 200 ms, never finishing it.
async fn trickle(address: String, deadline: Instant) -> (Instant, Option<Instant>) {
    let mut socket = TcpStream::connect(&address).await.expect("connect");
    let opened = Instant::now();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("head");
    let mut pace = tokio::time::interval(Duration::from_millis(200)); // the probe's pace
    let mut buffer = [0u8; 1024];
    loop {
        tokio::select! {
            read = socket.read(&mut buffer) => if matches!(read, Ok(0) | Err(_)) {
                return (opened, Some(Instant::now()));
            },
            _ = pace.tick() => if socket.write_all(b"x").await.is_err() {
                return (opened, Some(Instant::now()));
            },
            _ = tokio::time::sleep_until(deadline) => return (opened, None),
        }
    }
}

fn address_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickled_headers_are_cut_at_the_header_timeout_while_others_are_served() {
    let timeout = Duration::from_secs(3);
    let app = TestApp::start_with(
        Env::new(),
        cmdbus::Role::All,
        cmdbus::builtin_registry(),
        |c| {
            c.http.header_timeout_secs = timeout.as_secs_f64();
        },
    )
    .await;
    let address = address_of(&app.base);
    let deadline = Instant::now() + timeout + Duration::from_secs(15);
    let trickled: Vec<_> = (0..20)
        .map(|_| tokio::spawn(trickle(address.clone(), deadline)))
        .collect();
    let mut stalled = Vec::new();
    for _ in 0..2_000 {
        let mut socket = TcpStream::connect(&address).await.expect("connect");
        let opened = Instant::now();
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("partial head");
        stalled.push((opened, socket));
    }
    let first_opened = stalled[0].0;

    // Everyone else is served while all of them are open.
    let health = reqwest::get(app.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let types = app
        .http
        .get(app.url("/v1/types"))
        .send()
        .await
        .expect("types");
    assert_eq!(types.status(), 200);
    assert!(
        first_opened.elapsed() < timeout,
        "others waited {:?} behind stalled clients",
        first_opened.elapsed()
    );

    let mut lifetimes = Vec::new();
    let closes = join_all(
        stalled
            .into_iter()
            .map(|(opened, socket)| async move { (opened, closed_at(socket, deadline).await) }),
    )
    .await;
    for (opened, closed) in closes.into_iter().chain(
        join_all(trickled)
            .await
            .into_iter()
            .map(|result| result.expect("trickle task")),
    ) {
        lifetimes.push(closed.map(|closed| closed - opened));
    }
    let closed: Vec<Duration> = lifetimes.iter().flatten().copied().collect();
    assert_eq!(
        closed.len(),
        2_020,
        "the server closed {} of 2020",
        closed.len()
    );
    let shortest = closed.iter().min().copied().unwrap_or_default();
    assert!(
        shortest >= timeout - Duration::from_millis(300),
        "a client was cut after {shortest:?}, before the header timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_in_the_backlog_until_a_slot_frees() {
    let timeout = Duration::from_millis(1_500);
    let app = TestApp::start_with(
        Env::new(),
        cmdbus::Role::All,
        cmdbus::builtin_registry(),
        |c| {
            c.http.header_timeout_secs = timeout.as_secs_f64();
            c.http.max_connections = 20;
        },
    )
    .await;
    let address = address_of(&app.base);
    let mut idle = Vec::new();
    for _ in 0..25 {
        idle.push(TcpStream::connect(&address).await.expect("connect"));
    }
    let started = Instant::now();
    // A fresh client: the app's own has a pooled connection that holds a slot.
    let health = tokio::time::timeout(
        Duration::from_secs(20),
        reqwest::Client::new().get(app.url("/healthz")).send(),
    )
    .await
    .expect("answered once idle connections timed out")
    .expect("healthz");
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(300),
        "answered after {:?}: the cap of 20 did not hold it back",
        started.elapsed()
    );
    drop(idle);
    app.stop().await;
}

#[tokio::test]
async fn under_a_low_descriptor_limit_idle_sockets_time_out_and_the_server_serves_again() {
    let env = Env::new();
    let server = Proc::spawn_limited(&env, "all", &[("CMDBUS_HEADER_TIMEOUT_SECS", "2")], 256);
    common::wait_ready(&reqwest::Client::new(), &server.base).await;
    let address = address_of(&server.base);
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&address).await.expect("connect"));
    }
    let http = reqwest::Client::new();
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        for path in ["/healthz", "/readyz"] {
            let response = http
                .get(format!("{}{path}", server.base))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "{path}");
        }
    })
    .await;
    assert!(answered.is_ok(), "never served again with 300 idle sockets");
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = join_all(idle.into_iter().map(|socket| closed_at(socket, deadline))).await;
    assert!(closed.iter().all(Option::is_some), "idle sockets left open");
    drop(server);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_is_answered_408() {
    let app = TestApp::start_with(
        Env::new(),
        cmdbus::Role::All,
        cmdbus::builtin_registry(),
        |c| {
            c.http.body_timeout_secs = 1.0;
        },
    )
    .await;
    // A third of a JSON body, then nothing.
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(r#"{"type":"#.to_owned())])
        .chain(futures_util::stream::pending());
    let started = Instant::now();
    let response = app
        .http
        .post(app.url("/v1/commands"))
        .header("content-type", "application/json")
        .header("content-length", "60")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("an answer, not a hang");
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let problem: Value = response.json().await.expect("problem body");
    assert_eq!(problem["code"], "request_timeout");
    app.stop().await;
}

/// The resident memory of `pid`, sampled every 10 ms; `growth_mib` is the peak over the start.
struct Rss {
    pid: u32,
    start: u64,
    peak: Arc<AtomicU64>,
    stop: CancellationToken,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

impl Rss {
    fn watch(pid: u32) -> Self {
        let start = rss_kib(pid);
        let peak = Arc::new(AtomicU64::new(start));
        let stop = CancellationToken::new();
        tokio::spawn({
            let (peak, stop) = (Arc::clone(&peak), stop.clone());
            async move {
                loop {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {} // sampling
                    }
                }
            }
        });
        Self {
            pid,
            start,
            peak,
            stop,
        }
    }

    fn growth_mib(&self) -> u64 {
        let peak = self.peak.fetch_max(rss_kib(self.pid), Ordering::Relaxed);
        peak.max(rss_kib(self.pid)).saturating_sub(self.start) / 1024
    }
}

impl Drop for Rss {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The real binary, ready, with its WebSocket URL.
async fn server(env: &Env) -> (Proc, String) {
    let server = Proc::spawn(env, "all", &[]);
    common::wait_ready(&reqwest::Client::new(), &server.base).await;
    let ws = format!("{}/v1/ws", server.base.replacen("http", "ws", 1));
    (server, ws)
}

/// A masked client frame header (zero mask, so the payload goes as is).
fn frame_header(opcode: u8, length: u64) -> Vec<u8> {
    let mut header = vec![0x80 | opcode];
    match length {
        0..=125 => header.push(0x80 | length as u8),
        126..=65_535 => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&length.to_be_bytes());
        }
    }
    header.extend_from_slice(&[0; 4]);
    header
}

#[tokio::test]
async fn a_client_that_floods_pings_and_never_reads_is_dropped_with_memory_bounded() {
    let env = Env::new();
    let (server, ws) = server(&env).await;
    let rss = Rss::watch(server.pid());
    let mut client = WsClient::connect(&ws).await;
    let mut pings = Vec::new();
    for _ in 0..64 {
        pings.extend(frame_header(0x9, 125));
        pings.extend([b'p'; 125]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0u64;
    let dropped = loop {
        if Instant::now() > deadline {
            break false;
        }
        // A write blocks while the server is not reading; it fails once it hung up.
        match tokio::time::timeout(Duration::from_secs(1), client.tcp().write_all(&pings)).await {
            Ok(Ok(())) => sent += 64,
            Ok(Err(_)) => break true,
            Err(_) => {}
        }
    };
    let growth = rss.growth_mib();
    println!("ping flood: {sent} pings sent, RSS +{growth} MiB, dropped: {dropped}");
    assert!(dropped, "still connected after {sent} pings");
    assert!(
        growth < RSS_BOUND_MIB,
        "RSS grew {growth} MiB under {sent} pings"
    );
    drop(server);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn frames_of_16_mib_are_refused_at_their_header_with_memory_bounded() {
    let env = Env::new();
    let (server, ws) = server(&env).await;
    let rss = Rss::watch(server.pid());
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::connect(&ws).await);
    }
    let sent = join_all(clients.iter_mut().map(|client| async move {
        let tcp = client.tcp();
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        let write = async {
            tcp.write_all(&frame_header(0x2, 16 << 20)).await?;
            while sent < 16 << 20 {
                tcp.write_all(&chunk).await?;
                sent += chunk.len();
            }
            std::io::Result::Ok(())
        };
        let refused = !matches!(
            tokio::time::timeout(Duration::from_secs(20), write).await,
            Ok(Ok(()))
        );
        (refused, sent)
    }))
    .await;
    let growth = rss.growth_mib();
    println!("16 MiB frames: taken before refusal {sent:?}, RSS +{growth} MiB");
    for (refused, sent) in &sent {
        assert!(refused, "a 16 MiB frame was taken whole");
        assert!(*sent < 16 << 20, "{sent} bytes taken");
    }
    assert!(growth < RSS_BOUND_MIB, "RSS grew {growth} MiB");
    drop(server);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

/// Inserts `count` finished commands of the default tenant in one transaction (so they share a
/// change), each with a result padded to `pad` bytes; returns their ids.
async fn insert_finished(pool: &sqlx::PgPool, count: i64, pad: i32) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "insert into commands (id, tenant, type, payload, result, status, finished_at)
         select gen_random_uuid(), $1, 'demo.echo', jsonb_build_object('n', n),
                jsonb_build_object('pad', repeat('x', $3)), 'success', now()
           from generate_series(1, $2) n
         returning id",
    )
    .bind(cmdbus_domain::DEFAULT_TENANT)
    .bind(count)
    .bind(pad)
    .fetch_all(pool)
    .await
    .expect("insert commands")
}

#[tokio::test]
async fn resumes_that_owe_a_large_table_hold_a_page_at_a_time_or_reset() {
    let env = Env::new();
    let mut migrate = Proc::spawn(&env, "migrate", &[]);
    assert!(migrate.wait_exit(), "migrate");
    let pool = sqlx::PgPool::connect(&env.database_url)
        .await
        .expect("pool");
    let before: String = sqlx::query_scalar("select pg_current_snapshot()::text")
        .fetch_one(&pool)
        .await
        .expect("snapshot");
    // 1,000 commands of 64 KiB, then 200,000 small ones; all inserted before the server starts,
    // so that only resumes read them.
    let large = insert_finished(&pool, 1_000, 64 * 1024).await;
    insert_finished(&pool, 200_000, 0).await;
    let (server, ws) = server(&env).await;
    let rss = Rss::watch(server.pid());

    // Named commands: all 1,000 large ones are replayed, a page at a time.
    let mut client = WsClient::connect(&ws).await;
    client
        .send(json!({"op": "subscribe", "ids": large, "since": before}))
        .await;
    let mut replayed = 0;
    loop {
        let message = client
            .next_json(Duration::from_secs(60))
            .await
            .expect("reply");
        match message["op"].as_str() {
            Some("command") => {
                assert_eq!(
                    message["command"]["result"]["pad"].as_str().map(str::len),
                    Some(64 * 1024)
                );
                replayed += 1;
            }
            Some("subscribed") => break,
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(replayed, 1_000);
    let growth = rss.growth_mib();
    println!("replay of 1,000 commands of 64 KiB: RSS +{growth} MiB");
    assert!(
        growth < RSS_BOUND_MIB,
        "a replay of 1,000 large commands grew RSS {growth} MiB"
    );

    // Everything: 201,000 changes owed, past the replay bound: reset, again and again.
    let mut client = WsClient::connect(&ws).await;
    for _ in 0..3 {
        client
            .send(json!({"op": "subscribe", "all": true, "since": before}))
            .await;
        let reset = client
            .next_json(Duration::from_secs(60))
            .await
            .expect("reset");
        assert_eq!(reset["op"], "reset", "{reset}");
        let subscribed = client
            .next_json(Duration::from_secs(60))
            .await
            .expect("subscribed");
        assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
    }
    let growth = rss.growth_mib();
    println!("three resets owing 201,000 changes: RSS +{growth} MiB");
    assert!(
        growth < RSS_BOUND_MIB,
        "resumes that reset grew RSS {growth} MiB"
    );
    pool.close().await;
    drop(server);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
