//! What browsers may do with this server. It answers only the host names it is meant to
//! (`CMDBUS_ALLOWED_HOSTS`: a page on another site that rebinds its own name to 127.0.0.1 is
//! refused), lets only its own origin and the listed ones call it or open WebSockets
//! (`CMDBUS_ALLOWED_ORIGINS`, which the CORS headers follow too), and marks every response so
//! that it is neither sniffed into another type nor leaks the page's address; no `/v1` answer
//! may be stored by a cache. The web UI's own
//! headers (CSP, framing) are in `web.rs`.

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
};

use crate::transport::HttpSettings;

/// Host names a server listening on loopback answers when none are configured.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// A setting that cannot be enforced as written.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// An origin is not `scheme://host[:port]`, or is `*`.
    #[error(
        "CMDBUS_ALLOWED_ORIGINS: {0:?} is not an origin (scheme://host[:port]; `*` is not accepted)"
    )]
    Origin(String),
    /// A host name is empty or malformed.
    #[error("CMDBUS_ALLOWED_HOSTS: {0:?} is not a host name")]
    Host(String),
}

/// Which hosts and origins are served.
#[derive(Debug)]
struct Policy {
    /// Lowercase names without ports; `None` serves any host.
    hosts: Option<Vec<String>>,
    /// Lowercase `scheme://authority`.
    origins: Vec<String>,
}

/// Layers the policy, CORS and the security headers over `app`; `local` is the listening
/// address, which decides the default host list.
pub(crate) fn apply(
    app: Router,
    settings: &HttpSettings,
    local: SocketAddr,
) -> Result<Router, PolicyError> {
    let policy = Policy::new(settings, local)?;
    let origins: Vec<HeaderValue> = policy
        .origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            header::IF_NONE_MATCH,
            // An SSE client resuming a stream from another origin (`GET /v1/events`).
            HeaderName::from_static("last-event-id"),
            // A traced front end's context (W3C Trace Context), which a submit records.
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            cmdbus_api::REQUEST_ID_HEADER,
        ])
        .max_age(PREFLIGHT_MAX_AGE);
    Ok(app
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(policy),
            check,
        ))
        // Outermost, so that refusals carry them too.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn(no_store)))
}

/// Marks every `/v1` answer `Cache-Control: no-store`: they are a tenant's commands and keys
/// (a new key's secret is in its creation's answer only), which no cache on the way or in the
/// browser may keep (the browser library's files excepted: public code, cached by `ETag`).
/// Outermost, so that refusals carry it too.
async fn no_store(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = (path == "/v1" || path.starts_with("/v1/")) && !crate::library::PATHS.contains(&path);
    let mut response = next.run(request).await;
    if api {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

impl Policy {
    fn new(settings: &HttpSettings, local: SocketAddr) -> Result<Self, PolicyError> {
        let listed: Vec<&str> = settings
            .allowed_hosts
            .iter()
            .map(|host| host.trim())
            .filter(|host| !host.is_empty())
            .collect();
        let hosts = if listed.contains(&"*") {
            None
        } else if !listed.is_empty() {
            let hosts = listed
                .iter()
                .map(|host| {
                    let name = host_name(host);
                    if name.is_empty() || name.contains('/') {
                        Err(PolicyError::Host((*host).to_owned()))
                    } else {
                        Ok(name)
                    }
                })
                .collect::<Result<_, _>>()?;
            Some(hosts)
        } else if local.ip().is_loopback() {
            Some(LOOPBACK_HOSTS.map(str::to_owned).to_vec())
        } else {
            tracing::info!(
                "CMDBUS_ALLOWED_HOSTS is unset: any Host is served; name the hosts clients use \
                 to refuse DNS-rebinding pages"
            );
            None
        };
        let origins = settings
            .allowed_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                match origin.split_once("://") {
                    Some(("http" | "https", authority))
                        if !authority.is_empty()
                            && !authority.contains(['/', '*', '?', '#', '@']) =>
                    {
                        Ok(origin)
                    }
                    _ => Err(PolicyError::Origin(origin)),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts, origins })
    }

    fn allows_host(&self, host: Option<&str>) -> bool {
        match (&self.hosts, host) {
            (None, _) => true,
            (Some(hosts), Some(host)) => {
                let name = host_name(host);
                hosts.contains(&name)
            }
            (Some(_), None) => false,
        }
    }

    /// The server's own origin (the same authority as the request's `Host`), or a listed one.
    fn allows_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        let same = origin
            .split_once("://")
            .zip(host)
            .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host));
        same || self.origins.contains(&origin)
    }
}

/// `Host` (or the authority of an absolute-form target) without its port, lowercase, without a
/// trailing dot; IPv6 addresses keep their brackets.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.find(']') {
        Some(end) if host.starts_with('[') => &host[..=end],
        _ => host.split(':').next().unwrap_or(host),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The authority the request was sent to.
fn request_host(request: &Request) -> Option<&str> {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
        })
}

/// Probes that address the server by whatever name reaches it (a pod's IP, a container's name),
/// from any origin (a status page, a dashboard): they need no credential and reveal nothing a
/// rebinding or foreign page could use, and refusing them would fail deployments.
pub(crate) const PROBES: [&str; 2] = ["/healthz", "/readyz"];

async fn check(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let host = request_host(&request);
    if PROBES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // The browser library is public code that pages of any site import from the server they
    // call (`library.rs`); the routes that answer with data keep refusing foreign origins.
    let library = crate::library::PATHS.contains(&request.uri().path());
    if !policy.allows_host(host) {
        return cmdbus_api::problem(
            StatusCode::BAD_REQUEST,
            "host_not_allowed",
            "this server does not answer for that host name",
        );
    }
    // Browsers send `Origin` on every WebSocket and cross-origin request; other clients need
    // none, so its absence is no reason to refuse.
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !library
    {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| policy.allows_origin(origin, host));
        if !allowed {
            return cmdbus_api::problem(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "pages of that origin may not call this server",
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[&str], origins: &[&str]) -> HttpSettings {
        let mut settings = crate::Config::defaults().http;
        settings.allowed_hosts = hosts.iter().map(|host| (*host).to_owned()).collect();
        settings.allowed_origins = origins.iter().map(|origin| (*origin).to_owned()).collect();
        settings
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn loopback_serves_its_own_names_with_any_port() {
        let policy = Policy::new(&settings(&[], &[]), address("127.0.0.1:8080")).expect("policy");
        for host in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:9",
            "LOCALHOST.",
            "localhost",
        ] {
            assert!(policy.allows_host(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example:8080",
            "[::2]:8080",
            "",
        ] {
            assert!(!policy.allows_host(Some(host)), "{host}");
        }
        assert!(!policy.allows_host(None));
    }

    #[test]
    fn elsewhere_any_host_is_served_unless_listed() {
        let any = Policy::new(&settings(&[], &[]), address("0.0.0.0:8080")).expect("policy");
        assert!(any.allows_host(Some("whatever.example")));
        let listed = Policy::new(
            &settings(&["Bus.Example:443"], &[]),
            address("0.0.0.0:8080"),
        )
        .expect("policy");
        assert!(listed.allows_host(Some("bus.example:8080")));
        assert!(!listed.allows_host(Some("localhost")));
        let star = Policy::new(&settings(&["*"], &[]), address("127.0.0.1:1")).expect("policy");
        assert!(star.allows_host(Some("anything")));
    }

    #[test]
    fn own_and_listed_origins_pass() {
        let policy = Policy::new(
            &settings(&[], &["https://App.Example/", "http://localhost:3000"]),
            address("127.0.0.1:8080"),
        )
        .expect("policy");
        assert!(policy.allows_origin("http://localhost:8080", Some("localhost:8080")));
        assert!(policy.allows_origin("https://app.example", Some("localhost:8080")));
        assert!(policy.allows_origin("http://localhost:3000", Some("localhost:8080")));
        assert!(!policy.allows_origin("http://localhost:8081", Some("localhost:8080")));
        assert!(!policy.allows_origin("null", Some("localhost:8080")));
        assert!(!policy.allows_origin("http://localhost:8080", None));
    }

    #[test]
    fn wildcards_and_malformed_settings_are_refused() {
        for origins in [
            &["*"][..],
            &["app.example"],
            &["ftp://app.example"],
            &["https://"],
        ] {
            assert!(
                Policy::new(&settings(&[], origins), address("127.0.0.1:1")).is_err(),
                "{origins:?}"
            );
        }
        assert!(Policy::new(&settings(&["a/b"], &[]), address("127.0.0.1:1")).is_err());
    }
}
