//! Test harness: each test gets its own PostgreSQL database and its own broker namespace, starts
//! the real app in-process on 127.0.0.1:0 (or the real binary as a child process), and talks to
//! it over HTTP and WebSocket like a client would. Waiting is done on the app's own long-poll and
//! WebSocket events, never on sleeps.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part of the harness

mod broker;
pub mod process;
pub mod sse;
mod ws;

pub use broker::TestBroker;
pub use ws::WsClient;

use anyhow::bail;
use cmdbus::{Config, Role};
use cmdbus_worker::Registry;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{PgPool, postgres::PgConnectOptions};
use std::{net::SocketAddr, str::FromStr, sync::OnceLock, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const DATABASE_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The API key every test of this binary calls with (tenant `default`, every scope); each
/// environment records it in its own database (`Env::authorize`).
pub fn test_key() -> &'static cmdbus_auth::MintedKey {
    static KEY: OnceLock<cmdbus_auth::MintedKey> = OnceLock::new();
    KEY.get_or_init(|| cmdbus_auth::generate_key().expect("randomness"))
}

/// An HTTP client that sends `credential` as its bearer on every request.
pub fn http_client_with(credential: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {credential}")
            .parse()
            .expect("ASCII header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// An HTTP client that calls with the test key.
pub fn http_client() -> reqwest::Client {
    http_client_with(&test_key().key)
}

/// One isolated environment: a database and a namespace, shared by the app processes of a test.
#[derive(Debug, Clone)]
pub struct Env {
    pub database_url: String,
    pub namespace: String,
}

impl Env {
    pub fn new() -> Self {
        let tag = Uuid::now_v7().simple().to_string();
        let tag = &tag[tag.len() - 12..];
        Self {
            database_url: format!("{DATABASE_SERVER}/cmdbus_test_{tag}"),
            namespace: format!("test{tag}"),
        }
    }

    /// Settings for an app of this environment (fast sweeps, short lease for fault tests).
    pub fn config(&self) -> Config {
        let mut config = Config::defaults();
        config.listen = "127.0.0.1:0".parse().expect("literal address");
        config.database_url = self.database_url.clone();
        config.amqp_url = AMQP_URL.to_owned();
        config.namespace = self.namespace.clone();
        config.sweep_interval_ms = 200;
        config.db_max_connections = Some(10);
        config.shutdown_grace_secs = 5.0;
        // Per-caller limits are tested on their own; elsewhere one key makes every request.
        config.auth.rate_limit = 0;
        config.auth.max_long_polls_per_key = 0;
        config.auth.max_sockets_per_tenant = 0;
        config.auth.max_unfinished_per_tenant = 0;
        config.auth.max_ids_per_tenant = 0;
        config.auth.failed_auth_per_address = 0;
        config.http.max_connections_per_address = 0;
        config
    }

    /// Creates the database if missing and records the test key in it (once is enough; again
    /// is harmless).
    pub async fn authorize(&self) {
        let pool = cmdbus_store::connect_and_migrate(&cmdbus_store::PoolConfig {
            url: self.database_url.clone(),
            max_connections: 1,
        })
        .await
        .expect("test database");
        let key = test_key();
        let recorded = cmdbus_store::create_key(
            &pool,
            &cmdbus_store::NewKey {
                id: Uuid::now_v7(),
                tenant: "default",
                name: "tests",
                scopes: &cmdbus_auth::Scopes::all().names(),
                secret_hash: &key.hash,
                prefix: &key.prefix,
                development: false,
            },
        )
        .await;
        match recorded {
            Ok(_) => {}
            Err(cmdbus_store::StoreError::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some("23505") => {}
            Err(error) => panic!("cannot record the test key: {error}"),
        }
        pool.close().await;
    }

    /// An HTTP client of this environment, calling with the test key.
    pub async fn http(&self) -> reqwest::Client {
        self.authorize().await;
        http_client()
    }

    /// Environment variables that make the `cmdbus` binary join this environment.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CMDBUS_DATABASE_URL", self.database_url.clone()),
            ("CMDBUS_AMQP_URL", AMQP_URL.to_owned()),
            ("CMDBUS_NAMESPACE", self.namespace.clone()),
            ("CMDBUS_LISTEN", "127.0.0.1:0".to_owned()),
            // Logs go to stderr, which children share with the test for their panics: off
            // unless a test asks for them.
            ("CMDBUS_LOG", "off".to_owned()),
            ("CMDBUS_RATE_LIMIT", "0".to_owned()),
            ("CMDBUS_MAX_LONG_POLLS_PER_KEY", "0".to_owned()),
            ("CMDBUS_MAX_SOCKETS_PER_TENANT", "0".to_owned()),
            ("CMDBUS_MAX_UNFINISHED_PER_TENANT", "0".to_owned()),
            ("CMDBUS_MAX_IDS_PER_TENANT", "0".to_owned()),
            ("CMDBUS_FAILED_AUTH_PER_ADDRESS", "0".to_owned()),
        ]
    }

    /// Deletes the namespace's exchanges and queues and drops the database.
    pub async fn teardown(&self, kinds: &[String]) -> anyhow::Result<()> {
        self.teardown_with(kinds, cmdbus_bus::QueueType::Classic)
            .await
    }

    /// `teardown` of a namespace declared with `queue_type` (declaring its delay tiers with
    /// another type would be refused).
    pub async fn teardown_with(
        &self,
        kinds: &[String],
        queue_type: cmdbus_bus::QueueType,
    ) -> anyhow::Result<()> {
        let broker = TestBroker::connect_with(self, queue_type).await;
        broker.broker.delete_topology(kinds).await?;
        broker.close().await;
        cmdbus_store::drop_database(&PgConnectOptions::from_str(&self.database_url)?).await?;
        Ok(())
    }
}

/// The app running in this test's process.
pub struct TestApp {
    pub env: Env,
    pub base: String,
    pub http: reqwest::Client,
    pub pool: PgPool,
    kinds: Vec<String>,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
    /// What `restart` needs to start the same app again.
    address: SocketAddr,
    role: Role,
    config: Config,
    registry: Registry,
}

impl TestApp {
    /// The api and the notifier as separate in-process roles, without a worker: submitted
    /// commands stay in `queue` until the test changes them.
    pub async fn api_and_notifier() -> (TestApp, TestApp) {
        let env = Env::new();
        let api =
            TestApp::start_with(env.clone(), Role::Api, cmdbus::builtin_registry(), |_| {}).await;
        let notifier =
            TestApp::start_with(env, Role::Notifier, cmdbus::builtin_registry(), |_| {}).await;
        (api, notifier)
    }

    /// Submits a `demo.echo` and waits until it is queued.
    pub async fn submit_queued(&self) -> Uuid {
        let id = self
            .submit_ok(serde_json::json!({"type": "demo.echo", "payload": 1}))
            .await;
        self.wait_status(id, "queue", std::time::Duration::from_secs(60))
            .await;
        id
    }

    /// `cmdbus all` with the built-in handlers.
    pub async fn start() -> Self {
        Self::start_with(Env::new(), Role::All, cmdbus::builtin_registry(), |_| {}).await
    }

    /// `cmdbus all` with the built-in handlers and settings changed by `tweak`.
    pub async fn start_tweaked(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(Env::new(), Role::All, cmdbus::builtin_registry(), tweak).await
    }

    pub async fn start_with(
        env: Env,
        role: Role,
        registry: Registry,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = env.config();
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let base = format!("http://{address}");
        let kinds = registry.names();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(cmdbus::run(
            role,
            config.clone(),
            registry.clone(),
            listener,
            shutdown.clone(),
        ));
        wait_ready(&reqwest::Client::new(), &base).await;
        let http = env.http().await;
        let pool = PgPool::connect(&env.database_url).await.expect("test pool");
        Self {
            env,
            base,
            http,
            pool,
            kinds,
            shutdown,
            handle,
            address,
            role,
            config,
            registry,
        }
    }

    /// Stops the app gracefully and starts it again on the same address, database and
    /// namespace: what a client sees when the server it talks to is redeployed. The graceful
    /// stop lets running handlers finish within their grace period, pushes what they did, then
    /// closes every WebSocket with `1012`; the new instance serves the same URL, so clients
    /// reconnect to it by themselves.
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        let result = (&mut self.handle).await.expect("app task");
        result.expect("app ended with an error");
        let listener = bind_again(self.address).await;
        self.shutdown = CancellationToken::new();
        self.handle = tokio::spawn(cmdbus::run(
            self.role,
            self.config.clone(),
            self.registry.clone(),
            listener,
            self.shutdown.clone(),
        ));
        // Pooled keep-alive connections went with the old instance.
        self.http = http_client();
        wait_ready(&self.http, &self.base).await;
    }

    /// Stops the app gracefully and removes its database and namespace.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = self.handle.await.expect("app task");
        result.expect("app ended with an error");
        self.pool.close().await;
        let queue_type = match self.config.queue_type {
            cmdbus::QueueTypeArg::Classic => cmdbus_bus::QueueType::Classic,
            cmdbus::QueueTypeArg::Quorum => cmdbus_bus::QueueType::Quorum,
        };
        self.env
            .teardown_with(&self.kinds, queue_type)
            .await
            .expect("teardown");
    }

    /// Stops the app gracefully but leaves the environment to the app that owns it (a second
    /// role of the same test).
    pub async fn stop_keeping_env(self) {
        self.shutdown.cancel();
        let result = self.handle.await.expect("app task");
        result.expect("app ended with an error");
        self.pool.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.base.replacen("http", "ws", 1))
    }

    /// `POST /v1/commands`.
    pub async fn submit(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/commands"))
            .json(&body)
            .send()
            .await
            .expect("submit");
        let status = response.status();
        (status, response.json().await.expect("json body"))
    }

    /// `GET path` with the app's key: the JSON body (whatever the status).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body")
    }

    /// `POST` with no body, e.g. `/v1/commands/{id}/cancel`.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Submits and returns the new command's id.
    pub async fn submit_ok(&self, body: Value) -> Uuid {
        let (status, view) = self.submit(body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
        id_of(&view)
    }

    /// Long-polls `GET /v1/commands/{id}` until `done(view)` holds, for at most `timeout`.
    pub async fn wait_until(
        &self,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_until_as(&self.http, id, timeout, done).await
    }

    /// `wait_until` with another credential's client.
    pub async fn wait_until_as(
        &self,
        http: &reqwest::Client,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut etag: Option<String> = None;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let mut request = http.get(self.url(&format!("/v1/commands/{id}?wait=5")));
            if let Some(etag) = &etag {
                request = request.header("if-none-match", etag);
            }
            let response = request.send().await?;
            if response.status() == StatusCode::NOT_MODIFIED {
                continue;
            }
            if response.status() != StatusCode::OK {
                bail!("GET {id}: {}", response.status());
            }
            etag = response
                .headers()
                .get("etag")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            last = response.json().await?;
            if done(&last) {
                return Ok(last);
            }
        }
        bail!("timed out waiting on {id}; last seen {last}")
    }

    /// Waits until the command has `status`.
    pub async fn wait_status(&self, id: Uuid, status: &str, timeout: Duration) -> Value {
        self.wait_until(id, timeout, |view| view["status"] == status)
            .await
            .expect("status reached")
    }

    /// Polls a count until `done(count)` holds (for at most 90 s), riding out a database that is
    /// restarting; returns the last count.
    pub async fn wait_count(&self, sql: &str, what: &str, done: impl Fn(i64) -> bool) -> i64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let read = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&self.pool)
                .await;
            match read {
                Ok(count) if done(count) => return count,
                Ok(count) => assert!(tokio::time::Instant::now() < deadline, "{what}: {count}"),
                Err(error) => assert!(tokio::time::Instant::now() < deadline, "{what}: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // polling the database's state
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }
}

/// A test command type's definition.
pub fn test_type(name: &str, max_attempts: i32) -> cmdbus_domain::TypeInfo {
    cmdbus_domain::TypeInfo {
        name: name.to_owned(),
        description: format!("test handler {name}"),
        max_attempts,
        example: None,
        payload_schema: None,
        result_schema: None,
    }
}

pub fn id_of(view: &Value) -> Uuid {
    view["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .expect("view has an id")
}

/// Polls `/healthz` until the process at `base` serves (one that cannot reach the broker is
/// live, not ready).
pub async fn wait_live_at(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = http.get(format!("{base}/healthz")).send().await
            && response.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // polling liveness
    }
    panic!("{base} never came up");
}

/// Polls `/readyz` until both dependencies are up (the app's own readiness signal).
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let mut last = String::from("no answer");
    for _ in 0..300 {
        match http.get(format!("{base}/readyz")).send().await {
            Ok(response) if response.status() == StatusCode::OK => return,
            Ok(response) => last = response.text().await.unwrap_or_default(),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // polling readiness, not ordering
    }
    panic!("app at {base} never became ready: {last}");
}

/// Binds `address` again after the app that held it stopped. The port is normally free at once
/// (the listener is closed and tokio sets `SO_REUSEADDR`); the retry covers a socket the kernel
/// is still releasing.
async fn bind_again(address: SocketAddr) -> TcpListener {
    let mut last_error = None;
    for _ in 0..100 {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // waiting for the port, not ordering
    }
    panic!("cannot bind {address} again: {last_error:?}");
}
