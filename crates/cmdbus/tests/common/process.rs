//! Faults produced for real, one process or connection at a time: `cmdbus` child processes that
//! a test pauses, resumes, terminates or kills; one process's broker connection closed; a
//! PostgreSQL link that can be cut; rows changed behind the app's back. Every child is killed
//! when its guard drops, even when the test fails half-way.

use super::{Env, TestApp};
use cmdbus::Role;

use serde_json::Value;
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A `cmdbus <role>` child process of a test's environment, listening on its own port.
pub struct Proc {
    child: Child,
    pub base: String,
}

impl Proc {
    /// Starts `cmdbus <role>` with the environment's settings plus `vars` (later ones win).
    pub fn spawn(env: &Env, role: &str, vars: &[(&str, &str)]) -> Self {
        Self::spawn_with(env, Command::new(env!("CARGO_BIN_EXE_cmdbus")), role, vars)
    }

    /// `spawn` under a limit of `nofile` open descriptors (`prlimit` execs the binary, so the
    /// pid is cmdbus's own).
    pub fn spawn_limited(env: &Env, role: &str, vars: &[(&str, &str)], nofile: u64) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_cmdbus"));
        Self::spawn_with(env, command, role, vars)
    }

    /// `spawn` with the process's log (its standard error) written to the file `log`.
    pub fn spawn_logging(env: &Env, role: &str, vars: &[(&str, &str)], log: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cmdbus"));
        command.stderr(std::fs::File::create(log).expect("a log file"));
        Self::spawn_with(env, command, role, vars)
    }

    /// `spawn` of `command` (a wrapper that execs the binary, or another build of it), given
    /// the role, the environment's settings and `vars`.
    pub fn spawn_with(env: &Env, mut command: Command, role: &str, vars: &[(&str, &str)]) -> Self {
        let port = free_port();
        command
            .arg(role)
            .envs(env.vars())
            .env("CMDBUS_LISTEN", format!("127.0.0.1:{port}"))
            .env("CMDBUS_SWEEP_INTERVAL_MS", "200")
            .stdout(Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        let child = command.spawn().expect("cmdbus child process starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `cmdbus worker` with a lease of `lease_secs`, ready (PostgreSQL and broker reached).
    pub async fn worker(env: &Env, lease_secs: &str, vars: &[(&str, &str)]) -> Self {
        let mut all = vec![("CMDBUS_LEASE_SECS", lease_secs)];
        all.extend_from_slice(vars);
        let worker = Self::spawn(env, "worker", &all);
        super::wait_ready(&reqwest::Client::new(), &worker.base).await;
        worker
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own; true when it exited cleanly.
    pub fn wait_exit(&mut self) -> bool {
        self.child.wait().expect("child exits").success()
    }

    /// Waits at most `within` for the process to exit on its own: `Some(clean)` when it did,
    /// `None` when it still runs (it is killed when the guard drops).
    pub async fn exit_within(&mut self, within: Duration) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status.success());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // polling for an exit, bounded
        }
    }

    /// SQL matching the `worker` column of rows this process claimed (`<host>-<pid>-<random>`).
    pub fn worker_like(&self) -> String {
        format!("%-{}-%", self.pid())
    }

    /// Waits until `/healthz` answers (a process that cannot reach the broker is not ready, but
    /// it is live).
    pub async fn wait_live(&self) {
        super::wait_live_at(&self.base).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped (SIGSTOP) process.
        self.kill();
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// An AMQP URL where no broker listens: the port is bound and closed again.
pub fn unreachable_amqp_url() -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port())
}

pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(output.status.success(), "rabbitmqctl {args:?} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes every ready message of `queue` (the messages are lost, as in an operator's mistake).
pub fn purge_queue(queue: &str) {
    rabbitmqctl(&["purge_queue", queue]);
}

/// Closes the broker connection of one process, named `cmdbus <Role> <pid>` by its client
/// properties; returns how many connections matched.
pub fn close_connection_of(role: &str, pid: u32) -> usize {
    let listing = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let name = format!(r#"{{"connection_name","cmdbus {role} {pid}"}}"#);
    let mine: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(&name))
        .filter_map(|line| line.split('\t').next())
        .collect();
    for connection in &mine {
        rabbitmqctl(&[
            "close_connection",
            connection,
            "a test closes one process's connection",
        ]);
    }
    mine.len()
}

/// Changes one command row directly in SQL, as a writer whose event never reached the broker:
/// `set` plus a fresh version (and the changing transaction, where the schema records it).
pub async fn change_behind_the_back(executor: &mut sqlx::PgConnection, id: Uuid, set: &str) -> i64 {
    let tracks_xid: bool = sqlx::query_scalar(
        "select exists (select 1 from information_schema.columns
                         where table_name = 'commands' and column_name = 'changed_xid')",
    )
    .fetch_one(&mut *executor)
    .await
    .expect("schema");
    let xid = if tracks_xid {
        ", changed_xid = pg_current_xact_id()"
    } else {
        ""
    };
    let statement = format!(
        "update commands set {set}, version = nextval('command_version'){xid} where id = $1 returning version"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
        .bind(id)
        .fetch_one(executor)
        .await
        .expect("update behind the app's back")
}

/// A TCP relay in front of PostgreSQL that a test can cut: existing links drop and new ones are
/// refused, as when a process loses its network to the database.
pub struct PgLink {
    pub port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<CancellationToken>>,
    acceptor: JoinHandle<()>,
}

impl PgLink {
    pub async fn open() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(Mutex::new(CancellationToken::new()));
        let acceptor = tokio::spawn({
            let (cut, links) = (Arc::clone(&cut), Arc::clone(&links));
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let severed = links.lock().expect("links").clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) =
                            tokio::net::TcpStream::connect("127.0.0.1:5432").await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = severed.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
            }
        });
        Self {
            port,
            cut,
            links,
            acceptor,
        }
    }

    /// The database URL of `env` reached through this link.
    pub fn url(&self, env: &Env) -> String {
        let database = env.database_url.rsplit('/').next().expect("database name");
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut links = self.links.lock().expect("links");
        links.cancel();
        *links = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for PgLink {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.links.lock().expect("links").cancel();
    }
}

/// A WebSocket client that subscribes to all commands and keeps its resume point the way the
/// protocol says: the last `cursor` it received (or, from a server that hands out only versions,
/// the highest version).
pub struct Follower {
    ws: super::WsClient,
    /// Where to resume from: a cursor string, or a version number.
    pub resume: Option<Value>,
}

impl Follower {
    /// Connects and subscribes to all, after `since` when given.
    pub async fn subscribe(url: &str, since: Option<Value>) -> Self {
        let mut ws = super::WsClient::connect(url).await;
        let mut request = serde_json::json!({"op": "subscribe", "all": true});
        if let Some(since) = &since {
            request["since"] = since.clone();
        }
        ws.send(request).await;
        Self { ws, resume: since }
    }

    /// Reads messages until a command for which `done` holds (returned), recording the resume
    /// point of everything read; a `subscribed` reply is read past.
    pub async fn until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.ws.next_json(remaining).await?;
            self.record(&message);
            match message["op"].as_str() {
                Some("command") if done(&message["command"]) => {
                    return Ok(message["command"].clone());
                }
                Some("command" | "subscribed") => {}
                _ => anyhow::bail!("unexpected message {message}"),
            }
        }
    }

    /// Waits for the `subscribed` reply (after any replay).
    pub async fn subscribed(&mut self) -> Value {
        loop {
            let message = self
                .ws
                .next_json(Duration::from_secs(10))
                .await
                .expect("subscribe reply");
            self.record(&message);
            if message["op"] == "subscribed" {
                return message;
            }
            assert_eq!(message["op"], "command", "{message}");
        }
    }

    fn record(&mut self, message: &Value) {
        if let Some(cursor) = message.get("cursor").filter(|c| c.is_string()) {
            self.resume = Some(cursor.clone());
            return;
        }
        if self.resume.as_ref().is_some_and(Value::is_string) {
            return; // a cursor-speaking server: versions are not resume points
        }
        let version = message["command"]["version"]
            .as_i64()
            .or_else(|| message["version"].as_i64());
        if let Some(version) = version
            && self.resume.as_ref().and_then(Value::as_i64) < Some(version)
        {
            self.resume = Some(Value::from(version));
        }
    }

    pub async fn close(self) {
        self.ws.close().await;
    }
}

/// True once a command view is in a terminal state.
pub fn finished(view: &Value) -> bool {
    ["success", "fail", "cancelled"].contains(&view["status"].as_str().unwrap_or_default())
}

/// The api role in-process (REST, relay, reaper) with the settings `tweak` changes; workers run
/// elsewhere.
pub async fn api_only(env: &Env, tweak: impl FnOnce(&mut cmdbus::Config)) -> TestApp {
    TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), tweak).await
}

/// The api role in-process with a lease of 2 s; workers run elsewhere.
pub async fn api_with_short_lease(env: &Env) -> TestApp {
    api_only(env, |config| config.lease_secs = 2.0).await
}

/// Waits until every attempt of `id` has an outcome (none left open).
pub async fn wait_attempts_closed(app: &TestApp, id: Uuid) {
    app.wait_count(
        &format!(
            "select count(*) from command_attempts where command_id = '{id}' and outcome is null"
        ),
        "every attempt gets an outcome",
        |open| open == 0,
    )
    .await;
}

/// Submits a `demo.sleep` of `ms` in `steps` that ignores its cancellation (so a run that lost
/// its lease tries to finish anyway), with one attempt, and waits until it runs and reported
/// progress (within `within`).
pub async fn long_run(app: &TestApp, ms: u64, steps: u64, within: Duration) -> Uuid {
    let payload = serde_json::json!({"ms": ms, "steps": steps, "ignore_cancel": true});
    let id = app
        .submit_ok(serde_json::json!({"type": "demo.sleep", "payload": payload, "max_attempts": 1}))
        .await;
    app.wait_until(id, within, |v| {
        v["status"] == "running" && v["progress"].as_f64() > Some(0.0)
    })
    .await
    .expect("running");
    id
}

/// Counts the attempts of `id` matching the SQL `filter`.
pub async fn attempts(app: &TestApp, id: Uuid, filter: &str) -> i64 {
    app.count(&format!(
        "select count(*) from command_attempts where command_id = '{id}' and {filter}"
    ))
    .await
}
