//! `/metrics` in the Prometheus text format: the roles' own counters (submitted, published,
//! attempts by outcome, handler time, broker sessions, WebSocket clients) and, read from
//! PostgreSQL at each scrape, how many commands are `new`, `queue` and `running` — each count one
//! small partial index, so a scrape never reads the table. Finished commands are counted by the
//! attempt counters instead.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use cmdbus_store::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Handler time buckets, in seconds: from a no-op to a long job.
const SECONDS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0,
];

/// Group-commit batch sizes (`cmdbus_batch_size`): one caller alone up to a full batch.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide recorder, installed once (`None` when the embedding application installed
/// its own recorder first: then it owns the metrics).
fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".to_owned()), &SECONDS_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("cmdbus_batch_size".to_owned()),
                    &BATCH_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

pub(crate) fn router(pool: Db) -> Router {
    // Install now, so that counters from the first request on are recorded.
    recorder();
    let (router, _) = routes().split_for_parts();
    router.with_state(pool)
}

/// The route with its description.
pub(crate) fn routes() -> OpenApiRouter<Db> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Prometheus metrics.
///
/// The roles' own counters and, read from PostgreSQL at each scrape, how many commands are
/// `new`, `queue` and `running`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The Prometheus text format (0.0.4).", body = String,
            content_type = "text/plain"),
        (status = 404, description = "The application that embeds cmdbus records the metrics \
            itself.", body = String, content_type = "text/plain"),
    ),
)]
async fn render(State(pool): State<Db>) -> impl IntoResponse {
    let Some(handle) = recorder() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are recorded by the host application",
        )
            .into_response();
    };
    handle.run_upkeep();
    let mut text = handle.render();
    // Straight from this deployment's database, not through the process-wide recorder.
    match cmdbus_store::count_unfinished(&pool).await {
        Ok(counts) => {
            text.push_str(
                "# HELP cmdbus_commands Unfinished commands in each status, from PostgreSQL.\n",
            );
            text.push_str("# TYPE cmdbus_commands gauge\n");
            for (status, count) in counts {
                text.push_str(&format!("cmdbus_commands{{status=\"{status}\"}} {count}\n"));
            }
        }
        Err(error) => tracing::warn!(%error, "cannot count commands for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
