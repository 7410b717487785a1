//! The `cmdbus` binary's wiring, as a library so that tests start the real app in-process:
//! `run(role, config, registry, listener, shutdown)` connects to PostgreSQL and RabbitMQ, starts
//! the role's tasks and serves HTTP until `shutdown`.
//!
//! Layout: `main.rs` parses the command line and calls `run` (or `run_keys`); `lib.rs` (`run`)
//! builds the role's tasks and its router from the pipeline crates and hands the router to
//! `serve.rs`, the accept loop, with `body.rs`'s request-body deadline. The router's own parts:
//! `health.rs` (liveness, readiness), `telemetry.rs` (`/metrics`), `docs.rs` (`/openapi.json`,
//! from the health, telemetry and security routes and each role's own), `web.rs` (the embedded
//! web UI) and `security.rs` (allowed hosts, origins, headers; reads `transport.rs`'s
//! `HttpSettings`). `config.rs` holds every setting, `transport.rs` and `access.rs` (keys, the
//! development start, `cmdbus keys`) their groups.

mod access;
mod body;
mod config;
mod docs;
mod health;
mod security;
mod serve;
mod telemetry;
mod transport;
mod web;

use anyhow::Context as _;
use axum::{Router, http::StatusCode};
use cmdbus_bus::{Broker, BusConfig};
use cmdbus_domain::{Lane, Names};
use cmdbus_feed::ChangeFeed;
use cmdbus_store::PoolConfig;
use cmdbus_worker::{Registry, WorkerConfig};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{
    catch_panic::CatchPanicLayer, classify::ServerErrorsFailureClass, trace::TraceLayer,
};

pub use access::{AuthSettings, KeysCommand, run_keys};
pub use config::{Cli, Command, Config, LaneArg, QueueTypeArg, Role};
pub use docs::openapi;
pub use security::PolicyError;
pub use transport::HttpSettings;

/// Changes queued for one WebSocket client or long-poll before it is told it lagged (a socket
/// is then closed, `1013`): a burst of this many for one client is absorbed, a client that
/// falls further behind resumes with its cursor. Only what a client follows is queued for it.
const FEED_CAPACITY: usize = 4_096;

/// The handlers built into the binary: the demo types.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    cmdbus_worker::demo::register(&mut registry);
    registry
}

/// Runs `role` until `shutdown` is cancelled, then shuts down gracefully: stop accepting, stop
/// consuming, let running handlers finish (or give them back), close the broker connection.
pub async fn run(
    role: Role,
    config: Config,
    registry: Registry,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if role == Role::Migrate && config.pgbouncer {
        // Migrations hold a session-level advisory lock, which transaction pooling breaks.
        anyhow::bail!(
            "`cmdbus migrate` must reach PostgreSQL directly: unset CMDBUS_PGBOUNCER and point \
             CMDBUS_DATABASE_URL at PostgreSQL, not at PgBouncer"
        );
    }
    let db_connections = config.db_connections(role);
    let pool = cmdbus_store::connect(
        &PoolConfig {
            url: config.database_url.clone(),
            max_connections: db_connections,
        },
        config.db_route(),
    )
    .await
    .context("cannot prepare the database")?;
    if role == Role::Migrate {
        tracing::info!("database migrated");
        return Ok(());
    }
    // The catalogue is what the api accepts; any role registers the types this binary handles.
    cmdbus_store::register_types(&pool, &registry.types())
        .await
        .context("cannot register command types")?;

    // The broker outlives the roles' shutdown, so that draining workers can still ack.
    let tracker = TaskTracker::new();
    let broker_stop = CancellationToken::new();
    let broker = Broker::start(
        BusConfig {
            url: config.amqp_url.clone(),
            names: Names::new(config.namespace.clone()),
            connection_name: format!("cmdbus {role:?} {}", std::process::id()),
            partitions: config.partitions,
            queue_type: match config.queue_type {
                QueueTypeArg::Classic => cmdbus_bus::QueueType::Classic,
                QueueTypeArg::Quorum => cmdbus_bus::QueueType::Quorum,
            },
        },
        broker_stop.clone(),
        &tracker,
    )?;

    let mut app = health::router(pool.clone(), broker.clone(), role != Role::Notifier)
        .merge(telemetry::router(pool.clone()));
    let serves_clients = role.serves_api() || role.serves_ws();
    let auth = if serves_clients {
        access::check_access(
            &pool,
            &config.auth,
            listener.local_addr()?,
            role == Role::All,
        )
        .await?;
        Some(
            cmdbus_auth::Authenticator::start(
                pool.clone(),
                config.auth.auth_config(listener.local_addr()?)?,
            )
            .await
            .context("cannot load the token secret")?,
        )
    } else {
        None
    };
    let feed = serves_clients
        .then(|| ChangeFeed::start(broker.clone(), FEED_CAPACITY, shutdown.clone(), &tracker));
    if let (true, Some(feed), Some(auth)) = (role.serves_api(), &feed, &auth) {
        let state = cmdbus_api::ApiState::new(
            pool.clone(),
            broker.clone(),
            feed.clone(),
            auth.clone(),
            cmdbus_api::ApiConfig {
                body_limit: config.max_body_bytes,
                redeliver_after: config.redeliver_after(),
                max_unfinished_per_tenant: config.auth.max_unfinished_per_tenant,
                ..Default::default()
            },
        );
        app = app.merge(cmdbus_api::router(state)).merge(docs::router(
            pool.clone(),
            config.auth.token_max_ttl_secs.max(1),
        ));
        tracker.spawn(cmdbus_api::run_sweeps(
            cmdbus_api::SweepConfig {
                interval: Duration::from_millis(config.sweep_interval_ms.max(10)),
                relay_after: Duration::from_secs(3),
                // A worker loses its lease at its own deadline first; the grace covers clocks.
                reap_after: Duration::from_secs(1),
                max_lease_losses: config.max_lease_losses.max(0),
                redeliver_after: config.redeliver_after(),
                retention: config.retention(),
            },
            pool.clone(),
            broker.clone(),
            shutdown.clone(),
        ));
    }
    if let (true, Some(feed), Some(auth)) = (role.serves_ws(), &feed, &auth) {
        let state = cmdbus_notifier::NotifierState::new(
            pool.clone(),
            feed.clone(),
            auth.clone(),
            Default::default(),
            shutdown.clone(),
        );
        tracker.spawn(cmdbus_notifier::watch_keys(state.clone()));
        app = app.merge(cmdbus_notifier::router(state));
        tracker.spawn(cmdbus_feed::follow_database(
            pool.clone(),
            feed.clone(),
            Duration::from_millis(config.tail_interval_ms.max(10)),
            shutdown.clone(),
        ));
    }
    if role == Role::All || role == Role::Api {
        app = app.merge(web::router());
    }
    let worker = role.runs_worker().then(|| {
        let config = WorkerConfig {
            worker_id: worker_id(),
            concurrency: config.worker_concurrency,
            prefetch: config.prefetch,
            lease: config.lease(),
            lane: match config.lane {
                LaneArg::Main => Lane::Main,
                LaneArg::Exceptions1 => Lane::Exceptions1,
                LaneArg::Exceptions2 => Lane::Exceptions2,
            },
            shutdown_grace: config.shutdown_grace(),
            redeliver_after: config.redeliver_after(),
        };
        tokio::spawn(cmdbus_worker::run(
            config,
            pool.clone(),
            broker.clone(),
            registry,
            shutdown.clone(),
        ))
    });

    let address = listener.local_addr()?;
    let app = security::apply(
        body::limit(app, config.http.body_timeout()),
        &config.http,
        address,
    )?;
    let limits = serve::Limits {
        header_timeout: config.http.header_timeout(),
        write_timeout: config.http.write_timeout(),
        max_connections: serve::connection_cap(config.http.max_connections, db_connections),
        drain: config.shutdown_grace(),
    };
    tracing::info!(role = ?role, %address, "cmdbus running");
    serve::serve(listener, with_tracing(app), limits, shutdown.clone()).await;
    shutdown.cancel(); // the server may also stop on its own
    if let Some(worker) = worker {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "worker failed"),
            Err(error) => tracing::error!(%error, "worker panicked"),
        }
    }
    broker_stop.cancel();
    tracker.close();
    tracker.wait().await;
    pool.close().await;
    Ok(())
}

/// Traces every request in a span that names its method, path and request id — never its
/// query string or headers, which may carry credentials — and gives it the id first.
fn with_tracing(app: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::extract::Request| {
            let id = request
                .headers()
                .get(cmdbus_api::REQUEST_ID_HEADER)
                .and_then(|id| id.to_str().ok())
                .unwrap_or_default();
            // At ERROR level so that it exists whenever anything is logged: its fields are the
            // context of every warning and error a request causes.
            tracing::error_span!(
                "request",
                method = %request.method(),
                path = request.uri().path(),
                request_id = id,
            )
        })
        .on_failure(
            |failure: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span| {
                match failure {
                    // Not ready (a dependency is away) is expected while it recovers.
                    ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
                        tracing::warn!(?latency, "answered 503")
                    }
                    failure => tracing::error!(%failure, ?latency, "request failed"),
                }
            },
        );
    app.layer(CatchPanicLayer::custom(|_| {
        cmdbus_api::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }))
    .layer(trace)
    .layer(axum::middleware::from_fn(cmdbus_api::request_id))
}

/// Unique per process: `<host>-<pid>-<random>`, the name on every lease this worker holds.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}
