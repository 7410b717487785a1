//! `cmdbus [all|api|worker|notifier|migrate]`: parses settings, sets up tracing, binds the
//! listener and runs the role until SIGTERM or Ctrl-C. `cmdbus keys …` manages API keys.

use anyhow::Context as _;
use clap::Parser;
use cmdbus::{Cli, Command, Role};
use std::io::IsTerminal as _;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or collector.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.config.log)
                .context("invalid CMDBUS_LOG filter")?,
        )
        .init();
    let role = match cli.command {
        None => Role::All,
        Some(Command::Role(role)) => role,
        Some(Command::Keys(command)) => {
            let pool = cmdbus_store::connect(
                &cmdbus_store::PoolConfig {
                    url: cli.config.database_url.clone(),
                    max_connections: 2,
                },
                cli.config.db_route(),
            )
            .await
            .context("cannot prepare the database")?;
            return cmdbus::run_keys(command, &pool).await;
        }
    };
    // Demo handlers take any payload (demo.sleep runs as long as asked): development only.
    let registry = if cli.config.auth.demo(cli.config.listen) {
        tracing::info!("demo handlers registered (development; CMDBUS_DEMO=false turns them off)");
        cmdbus::builtin_registry()
    } else {
        cmdbus_worker::Registry::new()
    };
    let listener = tokio::net::TcpListener::bind(cli.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    cmdbus::run(role, cli.config, registry, listener, shutdown).await
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
