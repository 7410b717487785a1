//! `cmdbus [all|api|worker|notifier|migrate]`: parses settings, sets up tracing, binds the
//! listener and runs the role until SIGTERM or Ctrl-C. `cmdbus keys …` manages API keys;
//! `cmdbus submit|get|list|watch|retry|cancel|tokens …` is a client of a running server
//! (`cmdbus::cli`), parsed apart so that it reads no server setting.

use anyhow::Context as _;
use clap::Parser;
use cmdbus::{Cli, Command, Role};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's allocator: a request allocates a few hundred times, and glibc's
/// malloc and free were an eighth of the server's CPU (docs/benchmarks.md, "What bounds cmdbus").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<_> = std::env::args_os().collect();
    if cmdbus::cli::is_client_command(&args) {
        return Ok(cmdbus::cli::main(args).await);
    }
    let cli = Cli::parse_from(args);
    let name = match &cli.command {
        None => Role::All.as_str(),
        Some(Command::Role(role)) => role.as_str(),
        Some(Command::Keys(_)) => "keys",
    };
    let logging = cmdbus::init_logging(&cli.config, name)?;
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
            return cmdbus::run_keys(command, &pool)
                .await
                .map(|()| ExitCode::SUCCESS);
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
    tokio::spawn(cmdbus::stop_on_signal(shutdown.clone()));
    let ran = cmdbus::run(role, cli.config, registry, listener, shutdown).await;
    logging.flush().await;
    ran.map(|()| ExitCode::SUCCESS)
}
