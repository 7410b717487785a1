//! `/metrics` in the Prometheus text format: the roles' own counters (submitted, published,
//! attempts by outcome, handler time, broker sessions, WebSocket clients) and, read from
//! PostgreSQL at each scrape, how many commands are `new`, `queue` and `running` — each count one
//! small partial index, so a scrape never reads the table. Finished commands are counted by the
//! attempt counters instead.
//!
//! The text names every tenant's command types and volumes, so it takes a credential of its own
//! (`CMDBUS_METRICS_TOKEN`, a bearer for the scraper, not an API key: a scraper belongs to no
//! tenant). Without one it is open on a loopback listener only, like the development key.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use cmdbus_auth::{AuthError, hash_key};
use cmdbus_store::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{net::SocketAddr, sync::OnceLock};
use utoipa::openapi::{
    OpenApi,
    security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The name of `/metrics`'s security scheme in the OpenAPI description.
const SCHEME: &str = "metrics_token";

/// Shortest metrics token accepted: it is a password a scraper holds, not one a person types.
const MIN_TOKEN_BYTES: usize = 16;

/// Who may read `/metrics`.
#[derive(Debug, Clone)]
pub(crate) enum MetricsAccess {
    /// Anyone: no token is set and the listener is loopback (development).
    Open,
    /// Whoever sends `Authorization: Bearer <token>`; the SHA-256 of the token, compared
    /// digest to digest so that the comparison says nothing about the token's bytes.
    Token([u8; 32]),
    /// Nobody: no token is set and others can reach the listener.
    Closed,
}

impl MetricsAccess {
    /// The rule for a server on `listen` with `token` (`CMDBUS_METRICS_TOKEN`; empty is unset,
    /// as a compose file's `${CMDBUS_METRICS_TOKEN:-}` passes it).
    pub(crate) fn new(token: Option<&str>, listen: SocketAddr) -> anyhow::Result<Self> {
        match token.filter(|token| !token.is_empty()) {
            Some(token) if token.len() < MIN_TOKEN_BYTES => anyhow::bail!(
                "CMDBUS_METRICS_TOKEN must be at least {MIN_TOKEN_BYTES} bytes \
                 (e.g. `openssl rand -hex 32`)"
            ),
            Some(token) => Ok(Self::Token(hash_key(token))),
            None if listen.ip().is_loopback() => Ok(Self::Open),
            None => {
                tracing::warn!(
                    "/metrics is closed: set CMDBUS_METRICS_TOKEN and give it to the scraper"
                );
                Ok(Self::Closed)
            }
        }
    }

    /// Whether a request with these headers may read the metrics.
    fn admits(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let expected = match self {
            Self::Open => return Ok(()),
            Self::Closed => {
                return Err(AuthError::Unauthorized(
                    "/metrics needs CMDBUS_METRICS_TOKEN on a listener off loopback",
                ));
            }
            Self::Token(expected) => expected,
        };
        // RFC 9110 §11.1: the scheme is case-insensitive.
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match presented {
            Some(token) if hash_key(token) == *expected => Ok(()),
            _ => Err(AuthError::Unauthorized(
                "send Authorization: Bearer <CMDBUS_METRICS_TOKEN>",
            )),
        }
    }
}

/// What `/metrics` needs.
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    pool: Db,
    access: MetricsAccess,
}

/// Handler time buckets, in seconds: from a no-op to a long job.
const SECONDS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0,
];

/// Group-commit batch sizes (`cmdbus_batch_size`): one caller alone up to a full batch.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often the histograms' recorded values are folded in, scraped or not (the exporter's
/// own default when it runs its upkeep itself).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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
            // A histogram keeps every value recorded until an upkeep folds them in: without a
            // scraper calling `/metrics`, memory would grow with every command.
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("cmdbus-metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = started {
                tracing::warn!(%error, "no metrics upkeep: histograms grow until /metrics is scraped");
            }
            Some(handle)
        })
        .as_ref()
}

pub(crate) fn router(pool: Db, access: MetricsAccess) -> Router {
    // Install now, so that counters from the first request on are recorded.
    recorder();
    let (router, _) = routes().split_for_parts();
    router.with_state(Telemetry { pool, access })
}

/// The route with its description.
pub(crate) fn routes() -> OpenApiRouter<Telemetry> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Adds `/metrics`'s security scheme to the description (the route names it).
pub(crate) fn describe_security(doc: &mut OpenApi) {
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "CMDBUS_METRICS_TOKEN, the scraper's own credential (not an API key). \
                         Without it set, /metrics is open on a loopback listener and closed \
                         on any other.",
                    ))
                    .build(),
            ),
        );
}

/// Prometheus metrics.
///
/// The roles' own counters and, read from PostgreSQL at each scrape, how many commands are
/// `new`, `queue` and `running`. Needs `Authorization: Bearer <CMDBUS_METRICS_TOKEN>` when the
/// token is set; without it, open on a loopback listener only.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The Prometheus text format (0.0.4).", body = String,
            content_type = "text/plain"),
        (status = 401, description = "`unauthorized`: no metrics token, or not the one set \
            (`CMDBUS_METRICS_TOKEN`); off loopback with no token set, always.",
            body = cmdbus_domain::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The application that embeds cmdbus records the metrics \
            itself.", body = String, content_type = "text/plain"),
    ),
)]
async fn render(State(telemetry): State<Telemetry>, headers: HeaderMap) -> impl IntoResponse {
    if let Err(refused) = telemetry.access.admits(&headers) {
        return refused.into_response();
    }
    let pool = telemetry.pool;
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
