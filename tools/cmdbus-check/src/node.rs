//! `cmdbus-check node <role>`: the real cmdbus role in this process, with the built-in handlers
//! plus `check.work`. Listens on 127.0.0.1:0 and prints the port as the first line on stdout,
//! so the orchestrator finds it; logs go to stderr; SIGTERM stops it gracefully.

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use std::io::Write as _;
use tokio_util::sync::CancellationToken;

/// Runs `role` until SIGTERM; true when it ended cleanly.
pub(crate) async fn main(role: cmdbus::Role, config: cmdbus::Config) -> anyhow::Result<bool> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false) // stderr is the run's log file
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .context("invalid CMDBUS_LOG filter")?,
        )
        .init();
    // Effects go to the run's own database; the pool connects on first use, so a node also
    // starts while PostgreSQL is briefly away.
    let effects = PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&config.database_url)
        .context("invalid CMDBUS_DATABASE_URL")?;
    let mut registry = cmdbus::builtin_registry();
    crate::handler::register(&mut registry, effects);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{port}")?;
        stdout.flush()?;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_sigterm(shutdown.clone()));
    cmdbus::run(role, config, registry, listener, shutdown).await?;
    Ok(true)
}

/// Cancels `shutdown` on SIGTERM (the orchestrator's graceful stop).
async fn stop_on_sigterm(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
        }
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
    shutdown.cancel();
}
