//! Fair shares: one end user (one browser token's subject) cannot take what its tenant's other
//! users and its backend need — sockets, unfinished commands, followed ids — and one client
//! address cannot take the server's connections or its key lookups. Loopback aliases
//! (127.0.0.2, …) are distinct client addresses on Linux.

use crate::common::{TestApp, WsClient, http_client_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{net::IpAddr, time::Duration};
use tokio::{io::AsyncReadExt as _, net::TcpSocket, time::Instant};
use uuid::Uuid;

const T: Duration = Duration::from_secs(20);

/// A token of tenant `default` for `subject` with `scopes`, signed offline with the test secret.
fn token(subject: &str, scopes: &[&str]) -> String {
    let now = chrono::Utc::now().timestamp();
    cmdbus_auth::sign(
        &cmdbus_auth::Claims {
            tenant: "default".to_owned(),
            sub: Some(subject.to_owned()),
            ids: Vec::new(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            exp: now + 600,
            iat: Some(now),
            nbf: None,
            iss: None,
            aud: None,
            key: None,
        },
        crate::SECRET.as_bytes(),
    )
}

/// Opens a socket with `credential`: subscribed, or closed with this code and reason.
async fn socket(app: &TestApp, credential: &str) -> Result<WsClient, (u16, String)> {
    let mut socket = WsClient::connect_with(&app.ws_url(), Some(credential)).await;
    socket.admitted(T).await.map(|()| socket)
}

#[tokio::test]
async fn one_subjects_token_takes_only_its_share_of_sockets_while_others_and_the_backend_connect() {
    // A cap of 20: a subject may hold 10% (2), tokens together 80% (16), keys the rest.
    let app = TestApp::start_tweaked(|config| {
        config.auth.token_secret = Some(crate::SECRET.to_owned());
        config.auth.max_sockets_per_tenant = 20;
    })
    .await;
    let u1 = token("u1", &["read"]);
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(socket(&app, &u1).await.expect("within the subject's share"));
    }
    let refused = socket(&app, &u1)
        .await
        .err()
        .expect("past the subject's share");
    assert_eq!(
        refused,
        (4429, "too many WebSockets open for this subject".to_owned())
    );
    // A subject's socket given back is its to take again.
    open.remove(0);
    let deadline = Instant::now() + T;
    loop {
        match socket(&app, &u1).await {
            Ok(socket) => break open.push(socket),
            Err(refused) if Instant::now() < deadline => {
                assert_eq!(refused.0, 4429);
            }
            Err(refused) => panic!("u1's closed socket was never given back: {refused:?}"),
        }
    }
    for subject in 2..=8 {
        let other = token(&format!("u{subject}"), &["read"]);
        for _ in 0..2 {
            open.push(
                socket(&app, &other)
                    .await
                    .expect("another subject connects"),
            );
        }
    }
    let refused = socket(&app, &token("u9", &["read"]))
        .await
        .err()
        .expect("tokens stop at the keys' reserve");
    assert_eq!(refused.0, 4429);
    assert!(
        refused.1.contains("API keys keep a reserve"),
        "{}",
        refused.1
    );
    let key = crate::key(&app, "default", &["read"]).await;
    for _ in 0..4 {
        open.push(
            socket(&app, &key)
                .await
                .expect("the backend's key connects"),
        );
    }
    let refused = socket(&app, &key).await.err().expect("the tenant's cap");
    assert_eq!(
        refused,
        (4429, "too many WebSockets open for this tenant".to_owned())
    );
    drop(open);
    app.stop().await;
}

#[tokio::test]
async fn one_subjects_submits_stop_at_its_share_while_the_backend_still_submits() {
    // A quota of 20: a subject may hold 2 unfinished commands, tokens together 16.
    let app = TestApp::start_tweaked(|config| {
        config.auth.token_secret = Some(crate::SECRET.to_owned());
        config.auth.max_unfinished_per_tenant = 20;
    })
    .await;
    // No worker handles this type: what is submitted stays unfinished.
    cmdbus_store::register_types(&app.pool, &[crate::common::test_type("test.idle", 1)])
        .await
        .expect("type registered");
    let submit = |credential: String| {
        let http = http_client_with(&credential);
        let url = app.url("/v1/commands");
        async move {
            let response = http
                .post(url)
                .json(&json!({"type": "test.idle"}))
                .send()
                .await
                .expect("submit");
            let status = response.status();
            let body: Value = response.json().await.expect("body");
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    let u1 = token("u1", &["submit", "read"]);
    for _ in 0..2 {
        assert_eq!(submit(u1.clone()).await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(
        submit(u1.clone()).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            "subject_quota_exceeded".to_owned()
        )
    );
    for subject in 2..=8 {
        let other = token(&format!("u{subject}"), &["submit", "read"]);
        for _ in 0..2 {
            assert_eq!(
                submit(other.clone()).await.0,
                StatusCode::ACCEPTED,
                "another subject submits"
            );
        }
    }
    assert_eq!(
        submit(token("u9", &["submit", "read"])).await,
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded".to_owned()),
        "tokens stop at the keys' reserve"
    );
    let key = crate::key(&app, "default", &["submit", "read"]).await;
    for _ in 0..4 {
        assert_eq!(
            submit(key.clone()).await.0,
            StatusCode::ACCEPTED,
            "the backend still submits"
        );
    }
    assert_eq!(
        submit(key).await,
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded".to_owned())
    );
    app.stop().await;
}

/// Subscribes `socket` to `count` made-up ids: `Ok` when subscribed, else the error's message.
async fn follow(socket: &mut WsClient, ids: &[Uuid]) -> Result<(), String> {
    socket.send(json!({"op": "subscribe", "ids": ids})).await;
    let reply = socket.next_json(T).await.expect("reply");
    match reply["op"].as_str() {
        Some("subscribed") => Ok(()),
        Some("error") => {
            assert_eq!(reply["code"], "too_many_ids", "{reply}");
            Err(reply["message"].as_str().unwrap_or_default().to_owned())
        }
        _ => panic!("unexpected reply {reply}"),
    }
}

fn made_up(count: usize) -> Vec<Uuid> {
    (0..count).map(|_| Uuid::now_v7()).collect()
}

#[tokio::test]
async fn subscriptions_are_bounded_per_token_across_its_sockets_and_per_tenant() {
    // 100 ids per tenant: a subject may follow 10 over all its sockets, tokens 80 together.
    let app = TestApp::start_tweaked(|config| {
        config.auth.token_secret = Some(crate::SECRET.to_owned());
        config.auth.max_ids_per_tenant = 100;
    })
    .await;
    let u1 = token("u1", &["read"]);
    let mut first = WsClient::connect_with(&app.ws_url(), Some(&u1)).await;
    let mut second = WsClient::connect_with(&app.ws_url(), Some(&u1)).await;
    let ids = made_up(10);
    follow(&mut first, &ids).await.expect("within the share");
    let refused = follow(&mut second, &made_up(1))
        .await
        .expect_err("the subject's share spans its sockets");
    assert!(refused.contains("for this subject"), "{refused}");
    // Unfollowed ids are given back.
    first
        .send(json!({"op": "unsubscribe", "ids": &ids[..5]}))
        .await;
    let deadline = Instant::now() + T;
    loop {
        match follow(&mut second, &made_up(5)).await {
            Ok(()) => break,
            Err(refused) if Instant::now() < deadline => {
                assert!(refused.contains("for this subject"), "{refused}");
            }
            Err(refused) => panic!("unfollowed ids never given back: {refused}"),
        }
    }
    let key = crate::key(&app, "default", &["read"]).await;
    let mut backend = WsClient::connect_with(&app.ws_url(), Some(&key)).await;
    follow(&mut backend, &made_up(90))
        .await
        .expect("the backend follows the rest of the tenant's ids");
    let refused = follow(&mut backend, &made_up(1))
        .await
        .expect_err("the tenant's bound");
    assert!(refused.contains("for this tenant"), "{refused}");
    app.stop().await;
}

/// A TCP connection to `app` from the loopback alias `from`.
async fn connect_from(app: &TestApp, from: &str) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind to a loopback alias");
    let address = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    socket.connect(address).await.expect("connect")
}

/// A client that sends from the loopback alias `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .build()
        .expect("client")
}

/// When the server closes `socket` (EOF, reset, or a whole answer then EOF), or `None`.
async fn closed_by(
    mut socket: tokio::net::TcpStream,
    deadline: Instant,
) -> Option<(Instant, Vec<u8>)> {
    let mut read = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((Instant::now(), read)),
            Ok(Ok(n)) => read.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unauthenticated_connections_close_soon_and_one_address_leaves_others_served() {
    let header_timeout = Duration::from_secs(15);
    let unauthenticated = Duration::from_millis(1_500);
    let app = TestApp::start_tweaked(|config| {
        config.http.header_timeout_secs = header_timeout.as_secs_f64();
        config.http.unauthenticated_timeout_secs = unauthenticated.as_secs_f64();
        config.http.max_connections = 50;
        config.http.max_connections_per_address = 20;
    })
    .await;
    // One address opens more idle connections than the whole pool holds.
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(connect_from(&app, "127.0.0.2").await);
    }
    // Other addresses are served at once.
    for from in ["127.0.0.3", "127.0.0.1"] {
        let started = Instant::now();
        let health = tokio::time::timeout(T, client_from(from).get(app.url("/healthz")).send())
            .await
            .expect("answered")
            .expect("healthz");
        assert_eq!(health.status(), 200);
        assert!(
            started.elapsed() < unauthenticated,
            "{from} waited {:?} behind another address's idle connections",
            started.elapsed()
        );
    }
    let deadline = opened + header_timeout + Duration::from_secs(10);
    let closes =
        futures_util::future::join_all(idle.into_iter().map(|socket| closed_by(socket, deadline)))
            .await;
    let mut refused = 0;
    for close in &closes {
        let (at, answer) = close.as_ref().expect("every idle connection is closed");
        let lived = *at - opened;
        if answer.starts_with(b"HTTP/1.1 429") {
            refused += 1;
            let answer = String::from_utf8_lossy(answer);
            assert!(answer.contains("too_many_connections"), "{answer}");
        } else {
            assert!(
                lived < unauthenticated + Duration::from_secs(3),
                "an idle connection lived {lived:?}, past the unauthenticated timeout"
            );
        }
    }
    assert!(
        refused >= 40 - 5,
        "only {refused} of the 40 past the address's share of 20 were answered 429"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_address() {
    let app = TestApp::start_tweaked(|config| {
        config.auth.failed_auth_per_address = 1;
        config.auth.failed_auth_burst = 20;
    })
    .await;
    let made_up = || format!("cmdbus_{}", "0".repeat(64));
    let guesser = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = guesser
            .get(app.url("/v1/types"))
            .bearer_auth(made_up())
            .send()
            .await
            .expect("request");
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            let problem: Value = response.json().await.expect("problem");
            assert_eq!(problem["code"], "too_many_failed_authentications");
        }
    }
    let unauthorized = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        (20..=22).contains(&unauthorized),
        "{unauthorized} of 30 guesses were looked up: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Another address is not refused for them.
    let other = client_from("127.0.0.3")
        .get(app.url("/v1/types"))
        .bearer_auth(made_up())
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    let key = crate::key(&app, "default", &["read"]).await;
    let served = client_from("127.0.0.3")
        .get(app.url("/v1/types"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(served.status(), StatusCode::OK);
    app.stop().await;
}

/// The median of `durations`.
fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_keys_lookup_is_not_queued_behind_made_up_keys() {
    // Lookups trusted for 20 ms: the good key is read again and again during the flood.
    // (Failed authentications per address are not limited here: the lanes alone are measured.)
    let app = TestApp::start_tweaked(|config| {
        config.auth.key_cache_ms = 20;
    })
    .await;
    let key = crate::key(&app, "default", &["read"]).await;
    let good = http_client_with(&key);
    let url = app.url("/v1/types");
    assert_eq!(good.get(&url).send().await.expect("request").status(), 200);
    let quiet = {
        let mut took = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let response = good.get(&url).send().await.expect("request");
            assert_eq!(response.status(), 200);
            took.push(started.elapsed());
        }
        median(took)
    };
    // 1,000 requests at once with made-up keys, from another address.
    let guesser = client_from("127.0.0.2");
    let flood: Vec<_> = (0..1_000)
        .map(|_| {
            let request = guesser.get(&url).bearer_auth(format!(
                "cmdbus_{}{}",
                Uuid::now_v7().simple(),
                Uuid::now_v7().simple()
            ));
            tokio::spawn(async move { request.send().await.map(|response| response.status()) })
        })
        .collect();
    let mut took = Vec::new();
    while took.len() < 50 && flood.iter().any(|request| !request.is_finished()) {
        let started = Instant::now();
        let response = good.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 200, "the good key was refused");
        took.push(started.elapsed());
    }
    let mut refused = 0;
    for request in flood {
        if let Ok(Ok(status)) = request.await {
            assert_ne!(status, StatusCode::OK, "a made-up key was let in");
            refused += 1;
        }
    }
    println!(
        "good key, median of {} requests under 1,000 made-up keys: {:?} (quiet: {quiet:?}); \
         {refused} made-up keys refused",
        took.len(),
        if took.is_empty() {
            Duration::ZERO
        } else {
            median(took.clone())
        },
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_idles_long_only_once_a_request_on_it_authenticated() {
    let header_timeout = Duration::from_secs(15);
    let unauthenticated = Duration::from_millis(1_500);
    let app = TestApp::start_tweaked(|config| {
        config.http.header_timeout_secs = header_timeout.as_secs_f64();
        config.http.unauthenticated_timeout_secs = unauthenticated.as_secs_f64();
    })
    .await;
    let key = crate::key(&app, "default", &["read"]).await;
    let mut anonymous = connect_from(&app, "127.0.0.1").await;
    let mut authenticated = connect_from(&app, "127.0.0.1").await;
    use tokio::io::AsyncWriteExt as _;
    anonymous
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    authenticated
        .write_all(
            format!(
                "GET /v1/types HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request");
    let answered = Instant::now();
    let kept = answered + unauthenticated + Duration::from_secs(2);
    let (anonymous, authenticated) = tokio::join!(
        closed_by(anonymous, answered + header_timeout),
        closed_by(authenticated, kept)
    );
    let (closed, answer) = anonymous.expect("the anonymous connection is closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "answered before it closed"
    );
    assert!(
        closed - answered < unauthenticated + Duration::from_secs(1),
        "an unauthenticated keep-alive connection idled {:?}",
        closed - answered
    );
    assert!(
        authenticated.is_none(),
        "an authenticated keep-alive connection was closed before the header timeout"
    );
    app.stop().await;
}
