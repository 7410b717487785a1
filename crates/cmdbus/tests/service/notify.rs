//! systemd's side of `Type=notify`, played by the test: a unix datagram socket named in
//! `NOTIFY_SOCKET` (and a watchdog asked for with `WATCHDOG_USEC`), and a gate in front of the
//! broker that refuses connections until the test opens it. The process says `READY=1` only
//! once it reaches the broker, feeds the watchdog only after that, and says `STOPPING=1` on
//! SIGTERM before it exits cleanly.

use crate::{
    common::{Env, process::Proc},
    gate::{BrokerGate, Gate},
};
use std::{path::PathBuf, time::Duration};
use tokio::net::UnixDatagram;
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// The service manager's end: every datagram the process sends, split into its `NAME=value`
/// lines.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind() -> Self {
        let path = std::env::temp_dir().join(format!("cmdbus-notify-{}", Uuid::now_v7().simple()));
        let socket = UnixDatagram::bind(&path).expect("notify socket");
        Self { socket, path }
    }

    /// The next datagram's lines, or `None` after `within`.
    async fn next(&self, within: Duration) -> Option<Vec<String>> {
        let mut buffer = vec![0; 4096];
        let read = tokio::time::timeout(within, self.socket.recv(&mut buffer))
            .await
            .ok()?
            .expect("notify socket reads");
        let text = String::from_utf8(buffer[..read].to_vec()).expect("UTF-8 datagram");
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Every datagram already sent, without waiting for more.
    fn pending(&self) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        let mut buffer = vec![0; 4096];
        while let Ok(read) = self.socket.try_recv(&mut buffer) {
            let text = String::from_utf8(buffer[..read].to_vec()).expect("UTF-8 datagram");
            all.push(text.lines().map(str::to_owned).collect());
        }
        all
    }

    /// Reads datagrams until one holds `line`; returns every datagram read, that one last.
    async fn until(&self, line: &str) -> Vec<Vec<String>> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(datagram) = self.next(left).await else {
                panic!("no {line} within {T:?}; received {seen:?}");
            };
            let found = datagram.iter().any(|sent| sent == line);
            seen.push(datagram);
            if found {
                return seen;
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn holds(datagrams: &[Vec<String>], line: &str) -> bool {
    datagrams.iter().flatten().any(|sent| sent == line)
}

// Two threads: the gate forwards the broker's traffic while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_and_the_watchdog_come_only_once_the_broker_is_reached_and_sigterm_says_stopping() {
    let env = Env::new();
    let socket = NotifySocket::bind();
    let mut gate = BrokerGate::start(Gate::Refuse).await;
    let socket_path = socket.path.to_str().expect("UTF-8 path").to_owned();
    let mut server = Proc::spawn(
        &env,
        "all",
        &[
            ("NOTIFY_SOCKET", &socket_path),
            // A watchdog of 400 ms: fed every 200 ms.
            ("WATCHDOG_USEC", "400000"),
            ("CMDBUS_AMQP_URL", &gate.url()),
        ],
    );

    // PostgreSQL is reached (the process serves), the broker is not: it says what it waits for.
    server.wait_live().await;
    let waiting = socket
        .until("STATUS=waiting for the broker (PostgreSQL reached)")
        .await;
    gate.wait_refused(3, T).await;
    let mut before = waiting;
    before.extend(socket.pending());
    assert!(
        !holds(&before, "READY=1") && !holds(&before, "WATCHDOG=1"),
        "neither ready nor fed while the broker is away: {before:?}"
    );
    let readiness: serde_json::Value = reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readiness body");
    assert_eq!(readiness["broker"], false, "{readiness}");

    // The broker comes within reach: ready, then the watchdog is fed, again and again.
    gate.set(Gate::Forward);
    let ready = socket.until("READY=1").await;
    assert!(
        !holds(&ready, "WATCHDOG=1"),
        "no watchdog before ready: {ready:?}"
    );
    assert!(
        holds(&ready, "STATUS=ready: PostgreSQL and the broker reached"),
        "{ready:?}"
    );
    socket.until("WATCHDOG=1").await;
    socket.until("WATCHDOG=1").await;

    // SIGTERM: the manager is told the stop began, and the process exits cleanly.
    server.signal("TERM");
    socket.until("STOPPING=1").await;
    let exited = server
        .exit_within(T)
        .await
        .expect("the process exits after SIGTERM");
    assert!(exited, "a clean exit after SIGTERM");
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
