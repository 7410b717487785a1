//! OpenTelemetry export (`otel` feature): the `tracing` layer that turns spans into OpenTelemetry
//! spans, exported in batches over OTLP/HTTP (protobuf) to `CMDBUS_OTLP_ENDPOINT`, and the
//! `SpanLinks` that join them to the trace context a command carries (`cmdbus_domain::trace`).
//!
//! The exporter's requests go out through the reqwest client the binary has anyway, on the
//! process's tokio runtime: the SDK's batch processor runs on a thread of its own and only
//! waits for them, so exporting never holds a thread that serves requests or runs handlers.

use anyhow::Context as _;
use cmdbus_domain::{TraceParent, trace::SpanLinks};
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use std::{future::Future, pin::Pin, time::Duration};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{Layer, Registry};

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running exporter: flushed and stopped by `shutdown`.
#[derive(Debug)]
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports what is still batched, then stops (at most `EXPORT_TIMEOUT`).
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        // The provider waits for its batch thread, whose export runs on this runtime.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "cannot flush the last spans");
        }
    }
}

/// The layer that exports spans to the OTLP/HTTP collector at `endpoint` (its base URL:
/// `/v1/traces` is added), for the process of `role`; installs the span links. Must be called
/// on the tokio runtime the exports are to run on.
pub(crate) fn start(
    endpoint: &str,
    role: &str,
) -> anyhow::Result<(Box<dyn Layer<Registry> + Send + Sync>, Exporter)> {
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .context("cannot build the OTLP HTTP client")?,
        runtime: tokio::runtime::Handle::try_current()
            .context("spans are exported from a tokio runtime")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(traces.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("cannot export spans to {traces}"))?;
    // OTEL_SERVICE_NAME, when set, names the service; `cmdbus` otherwise.
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "cmdbus".to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("cmdbus.role", role.to_owned()))
        .build();
    // Batched (OTEL_BSP_* tune it); sampled as the caller's traceparent says, every trace
    // that starts here.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "cmdbus");
    // Spans and events at INFO and above, whatever CMDBUS_LOG says of the log lines: a
    // command's spans are at ERROR, so that they exist whenever anything is logged.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    cmdbus_domain::trace::install_links(OtelLinks);
    Ok((Box::new(layer), Exporter { provider }))
}

/// Joins `tracing` spans to trace contexts through the OpenTelemetry layer.
#[derive(Debug)]
struct OtelLinks;

impl SpanLinks for OtelLinks {
    fn set_parent(&self, span: &Span, parent: &TraceParent) {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Refused only for a span that is disabled or already started: it keeps its parent.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }

    fn context(&self, span: &Span) -> Option<TraceParent> {
        let context = span.context();
        let own = context.span().span_context().clone();
        own.is_valid().then(|| TraceParent {
            trace_id: own.trace_id().to_bytes(),
            parent_id: own.span_id().to_bytes(),
            flags: own.trace_flags().to_u8(),
        })
    }
}

/// The exporter's HTTP client: the binary's reqwest, its requests run on the process's runtime
/// (the SDK's batch thread has none of its own and only waits for them).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl HttpClient for Client {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        });
        Box::pin(async move { sent.await? })
    }
}
