//! Transport bounds, tried against the real server: clients that stall or trickle their headers,
//! trickle their bodies or stop reading answers, and more idle connections than the cap or the
//! process's descriptors allow. WebSocket bounds are in `transport_ws.rs`, what browsers may do
//! in `transport_policy.rs`.

use crate::common::{Env, TestApp, process::Proc};
use futures_util::{StreamExt as _, future::join_all};
use serde_json::Value;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

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
    let app = TestApp::start_tweaked(|c| {
        c.http.header_timeout_secs = timeout.as_secs_f64();
    })
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
async fn a_keep_alive_connection_idle_past_the_header_timeout_is_closed() {
    let timeout = Duration::from_millis(1_500);
    let app = TestApp::start_tweaked(|c| {
        c.http.header_timeout_secs = timeout.as_secs_f64();
    })
    .await;
    let mut socket = TcpStream::connect(address_of(&app.base))
        .await
        .expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    let mut answer = [0u8; 1024];
    let read = socket.read(&mut answer).await.expect("answer");
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    let closed = closed_at(socket, answered + timeout + Duration::from_secs(10)).await;
    let idle = closed.map(|closed| closed - answered);
    assert!(
        idle.is_some_and(|idle| idle >= timeout - Duration::from_millis(300)),
        "closed after {idle:?} idle"
    );
    app.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_in_the_backlog_until_a_slot_frees() {
    let timeout = Duration::from_millis(1_500);
    let app = TestApp::start_tweaked(|c| {
        c.http.header_timeout_secs = timeout.as_secs_f64();
        c.http.max_connections = 20;
    })
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
    crate::common::wait_ready(&reqwest::Client::new(), &server.base).await;
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
async fn a_client_that_stops_reading_responses_is_dropped_after_the_write_timeout() {
    let app = TestApp::start_tweaked(|c| {
        c.http.write_timeout_secs = 1.0;
    })
    .await;
    let script = reqwest::get(app.url("/app.js")).await.expect("app.js");
    let script_len = script.bytes().await.expect("body").len();
    // Enough pipelined requests for the script for about 15 MB of answers, more than the
    // kernel's buffers hold, on a socket with a small receive buffer that then does not read.
    let count = 15_000_000_usize.div_ceil(script_len);
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket
        .connect(address_of(&app.base).parse().expect("address"))
        .await
        .expect("connect");
    let requests = "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(count);
    stream
        .write_all(requests.as_bytes())
        .await
        .expect("requests");
    // Not reading for longer than the write timeout is the behaviour under test.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    let all = count * script_len;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received < all {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(read)) => received += read,
        }
    }
    println!("stopped reading: {received} of {all} bytes of answers arrived");
    assert!(
        received < all,
        "every answer was delivered to a client that stopped reading"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_is_answered_408() {
    let app = TestApp::start_tweaked(|c| {
        c.http.body_timeout_secs = 1.0;
    })
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
