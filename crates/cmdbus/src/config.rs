//! Every setting, as a flag with a `CMDBUS_*` environment variable. Defaults point at the local
//! services, so `cmdbus` alone runs everything on one machine.

use clap::{Parser, Subcommand, ValueEnum};
use std::{net::SocketAddr, time::Duration};

/// What the roles' `--help` says of the client side (`crate::cli`), parsed apart from them.
const CLIENT_COMMANDS: &str = "Client commands (talk to a running server; no server setting \
    needed; `cmdbus <command> --help`):\n  submit, get, list, watch, retry, cancel, tokens mint \
    (with --url/CMDBUS_URL, --key/CMDBUS_KEY, --json)";

/// cmdbus: an HTTP command bus with a status database and push notifications.
#[derive(Debug, Clone, Parser)]
#[command(version, about, after_help = CLIENT_COMMANDS)]
pub struct Cli {
    /// Which role to run (default: all of them in one process), or a management command.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every role.
    #[command(flatten)]
    pub config: Config,
}

/// What the binary does.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run a role.
    #[command(flatten)]
    Role(Role),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(crate::access::KeysCommand),
}

/// The roles; each can run alone or all together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Role {
    /// api + worker + notifier + web UI in one process.
    All,
    /// REST api, outbox relay and lease reaper.
    Api,
    /// Runs handlers.
    Worker,
    /// WebSocket hub.
    Notifier,
    /// Creates the database if missing, applies migrations, exits.
    Migrate,
}

impl Role {
    /// The role's name on the command line (`all`, `api`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
            Role::Notifier => "notifier",
            Role::Migrate => "migrate",
        }
    }
    pub(crate) fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
    pub(crate) fn serves_ws(self) -> bool {
        matches!(self, Role::All | Role::Notifier)
    }
    pub(crate) fn runs_worker(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

/// Lane a worker consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LaneArg {
    /// Live traffic.
    Main,
    /// Parked failures.
    Exceptions1,
    /// Parked failures of lane 1.
    Exceptions2,
}

/// Kind of the durable command queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueTypeArg {
    /// Classic queues with priorities.
    Classic,
    /// Replicated quorum queues, without priorities.
    Quorum,
}

/// Settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// HTTP listen address (api, WebSocket, web UI, health).
    #[arg(
        long,
        env = "CMDBUS_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// PostgreSQL URL; the database is created if missing.
    #[arg(
        long,
        env = "CMDBUS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cmdbus",
        global = true
    )]
    pub database_url: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "CMDBUS_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        global = true
    )]
    pub amqp_url: String,
    /// Prefix of every exchange and queue name.
    #[arg(
        long,
        env = "CMDBUS_NAMESPACE",
        default_value = "cmdbus",
        global = true
    )]
    pub namespace: String,
    /// Handlers a worker runs at once. Runs that start and end together share their claim and
    /// finish statements, so more at once also means bigger batches.
    #[arg(
        long,
        env = "CMDBUS_WORKER_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    pub worker_concurrency: usize,
    /// Messages the broker may send a worker ahead of its acks.
    #[arg(long, env = "CMDBUS_PREFETCH", default_value_t = 128, global = true)]
    pub prefetch: u16,
    /// Ordered partitions per command type (commands with an ordering key); every process of a
    /// deployment must use the same number.
    #[arg(long, env = "CMDBUS_PARTITIONS", default_value_t = 4, global = true)]
    pub partitions: u16,
    /// Kind of the command queues of a new namespace (an existing queue keeps its kind).
    #[arg(
        long,
        env = "CMDBUS_QUEUE_TYPE",
        value_enum,
        default_value = "classic",
        global = true
    )]
    pub queue_type: QueueTypeArg,
    /// Seconds a claim holds without a heartbeat.
    #[arg(long, env = "CMDBUS_LEASE_SECS", default_value_t = 30.0, global = true)]
    pub lease_secs: f64,
    /// Seconds of silence after which a worker process counts as gone: the api's sweep then
    /// releases its runs (the worker stops them itself first). Its heartbeat row is written every
    /// fifth of this; a value at or above the lease changes nothing.
    #[arg(
        long,
        env = "CMDBUS_WORKER_DEAD_AFTER_SECS",
        default_value_t = 5.0,
        global = true
    )]
    pub worker_dead_after_secs: f64,
    /// Lease losses a command survives (its worker died, paused or lost the database); one more
    /// fails it with `lease_lost`. Lost runs do not use up `max_attempts`.
    #[arg(
        long,
        env = "CMDBUS_MAX_LEASE_LOSSES",
        default_value_t = 2,
        global = true
    )]
    pub max_lease_losses: i32,
    /// Seconds a `queue` row may wait past its due time, unclaimed, before its message is
    /// published again (in case the broker lost it; copies are harmless).
    #[arg(
        long,
        env = "CMDBUS_REDELIVER_AFTER_SECS",
        default_value_t = 300.0,
        global = true
    )]
    pub redeliver_after_secs: f64,
    /// Finished commands (and their attempts) older than this are deleted: `7d`, `12h`, `30m`,
    /// `45s` or seconds; `0` keeps them forever.
    #[arg(
        long,
        env = "CMDBUS_RETENTION",
        default_value = "7d",
        value_parser = parse_retention,
        global = true
    )]
    pub retention: Duration,
    /// Milliseconds between two reads of the changes in PostgreSQL by the notifier: the most a
    /// change whose event was lost waits before it is pushed.
    #[arg(
        long,
        env = "CMDBUS_TAIL_INTERVAL_MS",
        default_value_t = 200,
        global = true
    )]
    pub tail_interval_ms: u64,
    /// Which queues a worker consumes.
    #[arg(
        long,
        env = "CMDBUS_LANE",
        value_enum,
        default_value = "main",
        global = true
    )]
    pub lane: LaneArg,
    /// Seconds running handlers get to finish on shutdown before they are cancelled (clients
    /// are served meanwhile); then, once sockets closed, what open requests get before their
    /// connections are cut.
    #[arg(
        long,
        env = "CMDBUS_SHUTDOWN_GRACE_SECS",
        default_value_t = 30.0,
        global = true
    )]
    pub shutdown_grace_secs: f64,
    /// PostgreSQL connections per process; unset, sized by role so that a dozen processes fit
    /// PostgreSQL's default of 100: api 10, worker 8, notifier 4, all 20.
    #[arg(long, env = "CMDBUS_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,
    /// PostgreSQL is reached through PgBouncer in transaction mode without prepared-statement
    /// tracking: the statement cache is off, every statement runs in a transaction, and nothing
    /// is migrated at start (run `cmdbus migrate` against PostgreSQL directly). PgBouncer must
    /// set `server_reset_query = DEALLOCATE ALL` and `server_reset_query_always = 1`.
    #[arg(long, env = "CMDBUS_PGBOUNCER", default_value_t = false, global = true)]
    pub pgbouncer: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CMDBUS_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Milliseconds between sweeps (the release of due delayed commands, schedule ticks, the
    /// outbox relay, the lease reaper): a delayed command starts, and a schedule's tick is
    /// submitted, at most about this long after its time.
    #[arg(
        long,
        env = "CMDBUS_SWEEP_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub sweep_interval_ms: u64,
    /// A JSON file of schedules (recurring commands) that the api upserts by tenant and name at
    /// start: `{"schedules": [{"name", "tenant"?, "type", "payload", "cron", "timezone"?,
    /// "missed"?}]}`. A file that cannot be read, or with a schedule that is refused, stops
    /// the start.
    #[arg(long, env = "CMDBUS_SCHEDULES", global = true)]
    pub schedules: Option<std::path::PathBuf>,
    /// Tracing filter, e.g. `info` or `cmdbus=debug,info`.
    #[arg(long, env = "CMDBUS_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format and span export.
    #[command(flatten)]
    pub logging: crate::logging::LogSettings,
    /// Authentication and per-caller limits.
    #[command(flatten)]
    pub auth: crate::access::AuthSettings,
    /// Transport limits, hosts and origins.
    #[command(flatten)]
    pub http: crate::HttpSettings,
}

/// A role's PostgreSQL pool when none is configured. A connection is held only for a statement
/// or a short transaction, so a few serve many requests or handlers; the sizes let 2 apis,
/// 8 workers and 2 notifiers (92 connections) fit PostgreSQL's default `max_connections` of 100,
/// 3 of which are reserved for superusers.
fn default_db_connections(role: Role) -> u32 {
    match role {
        Role::All => 20,
        Role::Api => 10,
        // Claims and finishes are group-committed (two statements in flight each) and one
        // heartbeat renews every run, whatever the concurrency; the rest serve handlers' own
        // transactions (`hold_claim`).
        Role::Worker => 8,
        // The change tail, resumes and key lookups.
        Role::Notifier => 4,
        Role::Migrate => 2,
    }
}

/// `7d`, `12h`, `30m`, `45s`, or plain seconds.
pub(crate) fn parse_retention(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    let number: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number with s, m, h or d, not {text:?}"))?;
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| "too long".to_owned())
}

impl Config {
    /// Finished commands live this long; `None` keeps them forever.
    pub(crate) fn retention(&self) -> Option<Duration> {
        (!self.retention.is_zero()).then_some(self.retention)
    }

    pub(crate) fn redeliver_after(&self) -> Duration {
        Duration::from_secs_f64(self.redeliver_after_secs.max(1.0))
    }

    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs.max(1.0))
    }

    pub(crate) fn worker_dead_after(&self) -> Duration {
        Duration::from_secs_f64(self.worker_dead_after_secs.max(0.5))
    }

    /// The PostgreSQL pool size of `role`: the setting, or the role's default.
    pub(crate) fn db_connections(&self, role: Role) -> u32 {
        self.db_max_connections
            .unwrap_or_else(|| default_db_connections(role))
            .max(1)
    }

    /// How this process reaches PostgreSQL.
    pub fn db_route(&self) -> cmdbus_store::Route {
        if self.pgbouncer {
            cmdbus_store::Route::PgBouncer
        } else {
            cmdbus_store::Route::Direct
        }
    }

    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_secs.max(0.0))
    }

    /// Defaults, as if no flag or variable were given (tests start from here).
    pub fn defaults() -> Self {
        Cli::parse_from(["cmdbus"]).config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_fit_a_dozen_processes_in_postgresql_defaults() {
        let config = Config::defaults();
        assert_eq!(config.db_connections(Role::Api), 10);
        assert_eq!(config.db_connections(Role::Worker), 8);
        assert_eq!(config.db_connections(Role::Notifier), 4);
        assert_eq!(config.db_connections(Role::All), 20);
        let dozen = 2 * config.db_connections(Role::Api)
            + 8 * config.db_connections(Role::Worker)
            + 2 * config.db_connections(Role::Notifier);
        assert!(dozen <= 100 - 3, "{dozen} connections");
        let mut wide = Config::defaults();
        wide.worker_concurrency = 200;
        assert_eq!(wide.db_connections(Role::Worker), 8);
        wide.db_max_connections = Some(3);
        assert_eq!(wide.db_connections(Role::Worker), 3);
    }

    #[test]
    fn retention_reads_units() {
        assert_eq!(parse_retention("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_retention("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_retention("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_retention("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_retention("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_retention("0"), Ok(Duration::ZERO));
        assert!(parse_retention("7w").is_err());
        assert!(parse_retention("d").is_err());
        assert!(parse_retention("-1d").is_err());
    }
}
