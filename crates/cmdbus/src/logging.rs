//! Logging and tracing: the log on stderr (text for people, JSON lines for collectors), filtered
//! by `CMDBUS_LOG`, and, when `CMDBUS_OTLP_ENDPOINT` is set, the same spans exported over
//! OTLP/HTTP (`otel.rs`, the `otel` feature).
//!
//! A command's steps run in spans that carry its id, type, attempt, tenant and trace id
//! (`submit` in the api, `claim`, `handle`, `finish` in the worker, `push` in the notifier): a
//! text line shows them as its context, a JSON line as its `span` and `spans`.

use anyhow::Context as _;
use clap::ValueEnum;
use std::io::IsTerminal as _;
use tracing_subscriber::{
    Layer, Registry, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::Config;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one line of text each, coloured on a terminal.
    Text,
    /// For collectors: one JSON object a line, with the event's fields at the top level, the
    /// innermost span's fields under `span` and every span's under `spans`.
    Json,
}

/// Where log lines and spans go.
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log line format on stderr: `text` (for people) or `json` (one object a line, with the
    /// fields of the spans it was logged in: a command's id, type, attempt, tenant, trace id).
    #[arg(
        long,
        env = "CMDBUS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// OTLP/HTTP collector that spans are exported to, its base URL (`/v1/traces` is added),
    /// e.g. `http://127.0.0.1:4318`; unset or empty, nothing is exported. `OTEL_SERVICE_NAME`
    /// and `OTEL_BSP_*` apply. Needs a binary built with the `otel` feature.
    #[arg(long, env = "CMDBUS_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// What `init_logging` started: `flush` it before the process exits, so that the last spans
/// are exported.
#[derive(Debug)]
pub struct Logging {
    #[cfg(feature = "otel")]
    exporter: Option<crate::otel::Exporter>,
}

impl Logging {
    /// Exports the spans still batched (nothing to do when none are exported).
    pub async fn flush(self) {
        #[cfg(feature = "otel")]
        if let Some(exporter) = self.exporter {
            exporter.shutdown().await;
        }
    }
}

/// Logs to stderr with `config`'s filter (`CMDBUS_LOG`) and format (`CMDBUS_LOG_FORMAT`), and
/// exports spans to `CMDBUS_OTLP_ENDPOINT` when it is set, as the process of `role`. Call it
/// once, on the runtime the process runs on.
pub fn init_logging(config: &Config, role: &str) -> anyhow::Result<Logging> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log).context("invalid CMDBUS_LOG filter")?;
    // The filter is the log's own: spans are exported whatever it lets through.
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![match config.logging.log_format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, never into a log file or collector.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
        }];
    let endpoint = config
        .logging
        .otlp_endpoint
        .as_deref()
        .filter(|endpoint| !endpoint.is_empty());
    #[cfg(feature = "otel")]
    let (export, exporter) = match endpoint {
        None => (None, None),
        Some(endpoint) => {
            let (layer, exporter) = crate::otel::start(endpoint, role)?;
            (Some(layer), Some(exporter))
        }
    };
    #[cfg(not(feature = "otel"))]
    let export: Option<Box<dyn Layer<Registry> + Send + Sync>> = match endpoint {
        None => None,
        Some(_) => anyhow::bail!(
            "CMDBUS_OTLP_ENDPOINT is set, but this cmdbus ({role}) was built without span \
             export: build it with the `otel` feature (a default one)"
        ),
    };
    layers.extend(export);
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .context("logging was set up already")?;
    Ok(Logging {
        #[cfg(feature = "otel")]
        exporter,
    })
}
