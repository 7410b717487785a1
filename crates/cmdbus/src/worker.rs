//! Embedding cmdbus's worker in an application's own binary, with its own handlers and
//! dependencies, run beside `cmdbus api` and `cmdbus notifier` (see `examples/worker/`):
//!
//! ```ignore
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let mut registry = cmdbus::worker::Registry::new();
//!     registry.register_typed(info, my_handler);
//!     cmdbus::worker::main(registry).await
//! }
//! ```
//!
//! The binary takes the settings of `cmdbus worker` (flags and `CMDBUS_*` variables), registers
//! its types in the catalogue (so the api accepts them and checks their payloads), and serves
//! `/healthz`, `/readyz` and `/metrics` on `CMDBUS_LISTEN`.

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Config, Role};

pub use cmdbus_domain::TypeInfo;
pub use cmdbus_worker::{Context, Handler, HandlerError, Registry, TypedHandler};

/// A worker binary's command line: the settings of `cmdbus worker`.
#[derive(Debug, Parser)]
#[command(about = "A cmdbus worker with this application's handlers.")]
struct WorkerCli {
    #[command(flatten)]
    config: Config,
}

/// The `main` of a worker binary: reads its settings from the command line and `CMDBUS_*`,
/// logs to stderr (`CMDBUS_LOG`, `CMDBUS_LOG_FORMAT`; spans to `CMDBUS_OTLP_ENDPOINT`), binds `CMDBUS_LISTEN` and runs `registry` until SIGTERM or
/// Ctrl-C, then drains as `cmdbus worker` does.
pub async fn main(registry: Registry) -> anyhow::Result<()> {
    let config = WorkerCli::parse().config;
    let logging = crate::init_logging(&config, Role::Worker.as_str())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::process::stop_on_signal(shutdown.clone()));
    let ran = run(config, registry, listener, shutdown).await;
    logging.flush().await;
    ran
}

/// Runs the worker role with `registry` until `shutdown`: what `main` does once it has its
/// settings and listener, and what a test calls.
pub async fn run(
    config: Config,
    registry: Registry,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::run(Role::Worker, config, registry, listener, shutdown).await
}
