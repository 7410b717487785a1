//! The command line: one subcommand per scenario, and the options they share (which server,
//! which load).

use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, time::Duration};

use crate::cpu::{Accounting, Ports};

/// Load generator for a running cmdbus.
#[derive(Debug, Parser)]
#[command(name = "cmdbus-bench", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Submit commands over HTTP and watch them succeed over the WebSocket: throughput, latency
    /// and the CPU each process spent.
    E2e(E2eArgs),
    /// Attach many idle WebSocket subscribers: the notifier's memory per connection, delivery
    /// latency to them, and throughput with them attached against without.
    Fanout(FanoutArgs),
    /// The raw limits of the machine for the same work: RabbitMQ persistent publish with
    /// confirms and acked consume; PostgreSQL insert and two updates per command.
    Limits(LimitsArgs),
    /// A burst of keyed commands, some failing once: how long the backlog takes to drain and
    /// how many deliveries it cost.
    Keyed(KeyedArgs),
    /// The same open-loop load for many windows in a row: the figures and cmdbus's memory
    /// window by window (`--rate` and `--duration`, each window's length, e.g. `1m`).
    Soak(SoakArgs),
    /// Delete the broker queues and exchanges of a namespace (after a run).
    Cleanup(CleanupArgs),
}

/// The server under test.
#[derive(Debug, Clone, Args)]
pub(crate) struct Server {
    /// Base URL of the cmdbus HTTP listener.
    #[arg(
        long,
        env = "CMDBUS_BENCH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) url: String,
    /// An API key with the `submit` and `read` scopes (the server's rate limit must be off:
    /// `CMDBUS_RATE_LIMIT=0`).
    #[arg(long, env = "CMDBUS_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// The cmdbus processes to account CPU (and, for fan-out, memory) to; repeat for several.
    /// Default: every process named `cmdbus`.
    #[arg(long = "server-pid")]
    pub(crate) server_pids: Vec<u32>,
    /// The PostgreSQL port cmdbus uses: the process listening there, and its children, are
    /// the `postgres` group.
    #[arg(long, default_value_t = 5432)]
    pub(crate) postgres_port: u16,
    /// cmdbus's database: only its backends (and the cluster's helpers) are counted. Default:
    /// every backend.
    #[arg(long)]
    pub(crate) postgres_database: Option<String>,
    /// The RabbitMQ port cmdbus uses: the `beam.smp` listening there is the `rabbitmq` group.
    #[arg(long, default_value_t = 5672)]
    pub(crate) amqp_port: u16,
}

impl Server {
    /// Who is who among the processes of the machine.
    pub(crate) fn accounting(&self) -> Accounting {
        let ports = Ports {
            postgres: self.postgres_port,
            amqp: self.amqp_port,
        };
        let server_pids = (!self.server_pids.is_empty()).then_some(self.server_pids.as_slice());
        Accounting::new(server_pids, ports, self.postgres_database.as_deref())
    }
}

/// The load: what is submitted, how fast, for how long.
#[derive(Debug, Clone, Args)]
pub(crate) struct Load {
    /// Command type: `demo.noop` or `demo.sleep`.
    #[arg(long = "type", default_value = "demo.noop")]
    pub(crate) kind: String,
    /// Open loop: submit this many commands per second, whatever the server does.
    #[arg(long, conflicts_with = "concurrency")]
    pub(crate) rate: Option<u32>,
    /// Closed loop: keep this many commands in flight (submitted, success not yet pushed).
    /// The default when `--rate` is not given: 32.
    #[arg(long)]
    pub(crate) concurrency: Option<usize>,
    /// How long the measured window lasts (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Load before the window, not measured (connections, caches, the server's pools warm up).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// How long to wait after the window for the commands still in flight.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) drain: Duration,
    /// `demo.sleep`: how long each command sleeps, in milliseconds (one step).
    #[arg(long, default_value_t = 20)]
    pub(crate) sleep_ms: u64,
    /// Open loop: most commands in flight at once; a scheduled submit past it is skipped and
    /// counted (the server fell too far behind).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) max_in_flight: usize,
}

impl Load {
    /// Commands in flight for a closed loop; `None` for an open loop.
    pub(crate) fn closed_loop(&self) -> Option<usize> {
        match (self.rate, self.concurrency) {
            (Some(_), _) => None,
            (None, concurrency) => Some(concurrency.unwrap_or(32).max(1)),
        }
    }

    /// The handler input for the type.
    pub(crate) fn payload(&self) -> serde_json::Value {
        match self.kind.as_str() {
            "demo.sleep" => serde_json::json!({"ms": self.sleep_ms, "steps": 1}),
            _ => serde_json::json!({}),
        }
    }

    /// A short description of the load for the report.
    pub(crate) fn describe(&self) -> String {
        let kind = match self.kind.as_str() {
            "demo.sleep" => format!("demo.sleep {} ms", self.sleep_ms),
            other => other.to_owned(),
        };
        match (self.rate, self.closed_loop()) {
            (Some(rate), _) => format!("{kind}, open loop at {rate}/s"),
            (None, Some(concurrency)) => format!("{kind}, closed loop, {concurrency} in flight"),
            (None, None) => kind,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct KeyedArgs {
    #[command(flatten)]
    pub(crate) server: Server,
    /// Ordering keys, each submitted to in order by a submitter of its own.
    #[arg(long, default_value_t = 8)]
    pub(crate) keys: usize,
    /// Commands per key.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) per_key: usize,
    /// One command in this many fails once (`demo.fail`, retried after 1 s); 0: none fails.
    #[arg(long, default_value_t = 20)]
    pub(crate) fail_every: usize,
    /// Give up waiting for the backlog after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    #[command(flatten)]
    pub(crate) server: Server,
    #[command(flatten)]
    pub(crate) load: Load,
    /// How many windows of `--duration` to run.
    #[arg(long, default_value_t = 10)]
    pub(crate) windows: usize,
}

#[derive(Debug, Args)]
pub(crate) struct E2eArgs {
    #[command(flatten)]
    pub(crate) server: Server,
    #[command(flatten)]
    pub(crate) load: Load,
    /// Idle subscribers (each subscribed to a few ids that never change) attached during the run.
    #[arg(long, default_value_t = 0)]
    pub(crate) idle: usize,
    /// Write the end-to-end throughput to this file, for `limits --against`.
    #[arg(long)]
    pub(crate) record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    pub(crate) server: Server,
    #[command(flatten)]
    pub(crate) load: Load,
    /// Idle subscribers to open (the server's CMDBUS_MAX_SOCKETS_PER_TENANT and
    /// CMDBUS_MAX_CONNECTIONS must allow them).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sockets: usize,
    /// How many of them subscribe to every command (`all`); the rest to a few ids each.
    #[arg(long, default_value_t = 100)]
    pub(crate) all: usize,
    /// Ids each of the others subscribes to (ids of no command: they only watch).
    #[arg(long, default_value_t = 3)]
    pub(crate) ids: usize,
    /// WebSocket handshakes in progress at once while opening them.
    #[arg(long, default_value_t = 64)]
    pub(crate) connect_parallel: usize,
}

#[derive(Debug, Args)]
pub(crate) struct LimitsArgs {
    /// RabbitMQ; the measurement uses its own durable queue, deleted afterwards.
    #[arg(
        long,
        env = "CMDBUS_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub(crate) amqp_url: String,
    /// PostgreSQL; the database named here is dropped and created afresh, then dropped again.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/cmdbus_bench_limits"
    )]
    pub(crate) database_url: String,
    /// How long each measurement runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Publisher confirm windows to measure: messages published before waiting for their
    /// confirms.
    #[arg(long, value_delimiter = ',', default_value = "32,256")]
    pub(crate) windows: Vec<usize>,
    /// Rows per statement of the batched PostgreSQL measurement.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// PostgreSQL clients (connections working at once) to measure with.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub(crate) clients: Vec<usize>,
    /// Which measurements: `broker`, `postgres`, or both.
    #[arg(long, value_delimiter = ',', default_value = "broker,postgres")]
    pub(crate) only: Vec<String>,
    /// A file written by `e2e --record`: print that figure as a share of each limit.
    #[arg(long)]
    pub(crate) against: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CleanupArgs {
    /// RabbitMQ.
    #[arg(
        long,
        env = "CMDBUS_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub(crate) amqp_url: String,
    /// The run's database: the command types registered there name the queues to delete.
    #[arg(long, env = "CMDBUS_DATABASE_URL")]
    pub(crate) database_url: String,
    /// The namespace whose queues and exchanges to delete.
    #[arg(long, env = "CMDBUS_NAMESPACE")]
    pub(crate) namespace: String,
    /// Ordered partitions per type the server used.
    #[arg(long, env = "CMDBUS_PARTITIONS", default_value_t = 4)]
    pub(crate) partitions: u16,
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "m" | "min" => number * 60.0,
        other => return Err(format!("unknown unit `{other}` (ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("`{text}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }
}
