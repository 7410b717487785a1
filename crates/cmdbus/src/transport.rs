//! The HTTP transport's settings: how long a client may take to send a request or to read a
//! response, how many connections the server holds (and one address of them), and which host names and browser origins it
//! serves. One flattened group in `Config`, so that every limit a deployment may tune in front of
//! browsers is in one place.

use std::time::Duration;

/// Transport limits and the browser-facing policy.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Seconds a client has to send a request's headers, counted from the moment the connection
    /// is ready for one (accepted, or the previous response sent): trickled headers are cut, and
    /// a keep-alive connection idle for this long is closed.
    #[arg(
        long,
        env = "CMDBUS_HEADER_TIMEOUT_SECS",
        default_value_t = 10.0,
        global = true
    )]
    pub header_timeout_secs: f64,
    /// Seconds a client has to send a request's whole body, counted from its headers.
    #[arg(
        long,
        env = "CMDBUS_BODY_TIMEOUT_SECS",
        default_value_t = 30.0,
        global = true
    )]
    pub body_timeout_secs: f64,
    /// Seconds a write to a client may make no progress (the client stopped reading) before the
    /// connection is closed.
    #[arg(
        long,
        env = "CMDBUS_WRITE_TIMEOUT_SECS",
        default_value_t = 30.0,
        global = true
    )]
    pub write_timeout_secs: f64,
    /// Open client connections at most, WebSockets included; past it new connections wait in the
    /// kernel's backlog. Lowered at startup when the descriptor limit cannot hold it.
    #[arg(
        long,
        env = "CMDBUS_MAX_CONNECTIONS",
        default_value_t = 10_000,
        global = true
    )]
    pub max_connections: usize,
    /// Open client connections one client address may hold at once (0: unlimited); past it,
    /// its new connections are answered `429 too_many_connections` and closed, so that one
    /// address cannot take the whole pool. Behind a proxy every client shares the proxy's
    /// address: set 0 there and bound clients at the proxy.
    #[arg(
        long,
        env = "CMDBUS_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_000,
        global = true
    )]
    pub max_connections_per_address: usize,
    /// Seconds a connection on which no request authenticated may stay idle, before its first
    /// request and between requests (one that authenticated keeps the header timeout); also the
    /// time a WebSocket has to send its `auth` message.
    #[arg(
        long,
        env = "CMDBUS_UNAUTHENTICATED_TIMEOUT_SECS",
        default_value_t = 5.0,
        global = true
    )]
    pub unauthenticated_timeout_secs: f64,
    /// Host names served, comma-separated, matched against the `Host` header with its port
    /// ignored; `*` serves any. Unset: `localhost,127.0.0.1,[::1]` when listening on loopback
    /// (DNS-rebinding protection), any host otherwise.
    #[arg(
        long,
        env = "CMDBUS_ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`), comma-separated, whose pages may call the API (CORS) and
    /// open WebSockets, besides the server's own. `*` is refused: name them.
    #[arg(
        long,
        env = "CMDBUS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,
}

impl HttpSettings {
    pub(crate) fn header_timeout(&self) -> Duration {
        seconds(self.header_timeout_secs)
    }

    pub(crate) fn body_timeout(&self) -> Duration {
        seconds(self.body_timeout_secs)
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        seconds(self.write_timeout_secs)
    }

    pub(crate) fn unauthenticated_timeout(&self) -> Duration {
        seconds(self.unauthenticated_timeout_secs)
    }
}

/// Between 100 ms and a day: a zero or negative setting would refuse every request rather than
/// disable a bound, and a deadline past the clock's range would panic.
fn seconds(secs: f64) -> Duration {
    let secs = if secs.is_nan() {
        0.1
    } else {
        secs.clamp(0.1, 86_400.0)
    };
    Duration::from_secs_f64(secs)
}
