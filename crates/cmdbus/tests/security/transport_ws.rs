//! WebSocket bounds, measured on the real binary's resident memory: a client that floods pings
//! and never reads, clients that send 16 MiB frames, and resumes that owe a large table.

use crate::common::{Env, WsClient, process::Proc};
use futures_util::future::join_all;
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{io::AsyncWriteExt, time::Instant};
use tokio_util::sync::CancellationToken;

/// Most a probe may grow the server's resident memory.
const RSS_BOUND_MIB: u64 = 50;

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
    crate::common::wait_ready(&reqwest::Client::new(), &server.base).await;
    env.authorize().await;
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
