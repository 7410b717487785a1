//! The `cmdbus` binary's wiring, as a library so that tests start the real app in-process:
//! `run(role, config, registry, listener, shutdown)` connects to PostgreSQL and RabbitMQ, starts
//! the role's tasks and serves HTTP until `shutdown`.
//!
//! Layout: `main.rs` parses the command line and calls `run` (or `run_keys`); `lib.rs` (`run`)
//! builds the role's tasks and its router from the pipeline crates and hands the router to
//! `serve.rs`, the accept loop (which `admission.rs` tells whom to let in and how long to wait
//! for a first request), with `body.rs`'s request-body deadline. The router's own parts:
//! `health.rs` (liveness, readiness), `telemetry.rs` (`/metrics`), `docs.rs` (`/openapi.json`,
//! from the health, telemetry and security routes and each role's own), `web.rs` (the embedded
//! web UI), `library.rs` (the browser library's files) and `security.rs` (allowed hosts, origins, headers; reads `transport.rs`'s
//! `HttpSettings`). `config.rs` holds every setting, `transport.rs` and `access.rs` (keys, the
//! development start, `cmdbus keys`) their groups. `cli/` is the binary's client side
//! (`cmdbus submit`, `watch`, …): it talks to a server over HTTP and shares nothing with `run`.
//! `process.rs` holds what a binary does around its role (signals), `logging.rs` its log lines
//! (text or JSON) and, with `otel.rs` (the `otel` feature), its spans exported over OTLP;
//! `service.rs` what it tells a service manager (systemd's readiness, watchdog and status, from
//! the health loop, which asks `health.rs`); `worker.rs` is the public entry point of an
//! application's own worker binary (`cmdbus::worker::main(registry)`).

mod access;
mod admission;
mod body;
pub mod cli;
mod config;
mod docs;
mod health;
mod library;
mod logging;
#[cfg(feature = "otel")]
mod otel;
mod process;
mod security;
mod serve;
#[cfg(unix)]
mod service;
mod telemetry;
mod transport;
mod web;
pub mod worker;

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
pub use logging::{LogFormat, LogSettings, Logging, init_logging};
pub use process::stop_on_signal;
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

/// Runs `role` until `shutdown` is cancelled, then shuts down gracefully in two stages. First the
/// worker stops consuming and lets running handlers finish (or gives them back) while everything
/// else keeps serving: HTTP, the notifier's pushes and long-polls, the sweeps, so that clients
/// see the outcomes of the drain (`/readyz` answers `503` meanwhile). Once the worker has drained
/// and the change feed has pushed what it finished, the rest closes: sockets with `1012`,
/// connections after their request in flight, the broker connection last.
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
    if let (true, Some(path)) = (role.serves_api(), &config.schedules) {
        let declared = cmdbus_api::declare_schedules(&pool, path).await?;
        tracing::info!(declared, path = %path.display(), "schedules declared");
    }

    // The broker outlives the roles' shutdown, so that draining workers can still ack.
    let tracker = TaskTracker::new();
    // The second stage of a stop: what serves clients ends only after the worker drained.
    let closing = CancellationToken::new();
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

    let health = health::Health::new(
        pool.clone(),
        broker.clone(),
        role != Role::Notifier,
        shutdown.clone(),
    );
    #[cfg(unix)]
    if service::is_asked() {
        tracker.spawn(service::health_loop(
            health.clone(),
            shutdown.clone(),
            closing.clone(),
        ));
    }
    let mut app = health::router(health).merge(telemetry::router(
        pool.clone(),
        telemetry::MetricsAccess::new(
            config.auth.metrics_token.as_deref(),
            listener.local_addr()?,
        )?,
    ));
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
        .then(|| ChangeFeed::start(broker.clone(), FEED_CAPACITY, closing.clone(), &tracker));
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
            closing.clone(),
        ));
        tracker.spawn(cmdbus_api::run_schedules(
            cmdbus_api::ScheduleConfig {
                interval: Duration::from_millis(config.sweep_interval_ms.max(10)),
                redeliver_after: config.redeliver_after(),
            },
            pool.clone(),
            broker.clone(),
            closing.clone(),
        ));
    }
    if let (true, Some(feed), Some(auth)) = (role.serves_ws(), &feed, &auth) {
        let state = cmdbus_notifier::NotifierState::new(
            pool.clone(),
            feed.clone(),
            auth.clone(),
            cmdbus_notifier::NotifierConfig {
                auth_within: config.http.unauthenticated_timeout(),
                ..Default::default()
            },
            closing.clone(),
        );
        tracker.spawn(cmdbus_notifier::watch_keys(state.clone()));
        app = app.merge(cmdbus_notifier::router(state));
        tracker.spawn(cmdbus_feed::follow_database(
            pool.clone(),
            feed.clone(),
            Duration::from_millis(config.tail_interval_ms.max(10)),
            closing.clone(),
        ));
    }
    if role == Role::All || role == Role::Api {
        app = app.merge(web::router()).merge(library::router());
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
            host: host_name(),
            dead_after: config.worker_dead_after(),
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
        max_connections_per_address: config.http.max_connections_per_address,
        unauthenticated_within: config.http.unauthenticated_timeout(),
        drain: config.shutdown_grace(),
    };
    tracing::info!(role = ?role, %address, "cmdbus running");
    let drained = tokio::spawn(close_after_drain(
        shutdown.clone(),
        worker,
        // Only a feed that follows the database can say it caught up.
        feed.filter(|_| role.serves_ws()),
        closing.clone(),
    ));
    serve::serve(listener, with_tracing(app), limits, closing.clone()).await;
    // The server may also stop on its own: then nothing is left to drain for.
    shutdown.cancel();
    closing.cancel();
    if let Err(error) = drained.await {
        tracing::error!(%error, "worker panicked");
    }
    broker_stop.cancel();
    tracker.close();
    tracker.wait().await;
    pool.close().await;
    Ok(())
}

/// Longest wait, once the worker has drained, for the change feed to push what it finished: two
/// passes of its database reader, or this, whichever comes first.
const FINAL_PUSH_WITHIN: Duration = Duration::from_secs(10);

/// The hinge of a graceful stop: on `shutdown`, waits for the worker to drain, then for the feed
/// to have published every change committed by then (the final states the drain produced), and
/// only then cancels `closing`, which ends the sockets, the long-polls and the serve loop.
async fn close_after_drain(
    shutdown: CancellationToken,
    worker: Option<tokio::task::JoinHandle<Result<(), cmdbus_store::StoreError>>>,
    feed: Option<ChangeFeed>,
    closing: CancellationToken,
) {
    shutdown.cancelled().await;
    let Some(worker) = worker else {
        closing.cancel(); // nothing drains here: close at once
        return;
    };
    match worker.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "worker failed"),
        Err(error) => tracing::error!(%error, "worker panicked"),
    }
    if let Some(feed) = feed {
        let caught_up = tokio::select! {
            _ = closing.cancelled() => true,
            caught_up = tokio::time::timeout(FINAL_PUSH_WITHIN, feed.caught_up()) => caught_up.is_ok(),
        };
        if !caught_up {
            tracing::warn!("the change feed did not catch up after the drain; closing anyway");
        }
    }
    tracing::info!("drained; closing client connections");
    closing.cancel();
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
            let span = tracing::error_span!(
                "request",
                method = %request.method(),
                path = request.uri().path(),
                request_id = id,
            );
            // The caller's trace (W3C Trace Context), when spans are exported.
            if let Some(parent) = request
                .headers()
                .get(cmdbus_domain::trace::TRACEPARENT_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(cmdbus_domain::TraceParent::parse)
            {
                cmdbus_domain::trace::adopt(&span, &parent);
            }
            span
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

/// The machine's name, as `/etc/hostname` says (`worker` when it says nothing).
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

/// Unique per process: `<host>-<pid>-<random>`, the name on every lease this worker holds.
fn worker_id() -> String {
    let host = host_name();
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}
