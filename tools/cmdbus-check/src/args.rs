//! The settings of `cmdbus-check run`, and which faults it injects.

use crate::shared::{AMQP_URL, DATABASE_SERVER};

/// Settings of a fault run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Seed of every random choice (print it to reproduce a run).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Seconds of commands and faults, before the run settles and is checked.
    #[arg(long, default_value_t = 90)]
    pub(crate) duration: u64,
    /// Api processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) apis: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    pub(crate) workers: usize,
    /// Notifier processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) notifiers: usize,
    /// WebSocket clients.
    #[arg(long, default_value_t = 4)]
    pub(crate) clients: usize,
    /// Commands offered per second: the submitter starts one on every tick without waiting for
    /// the previous answer (only one key's commands wait for each other, so that a key's
    /// submission order is defined); the counts line gives the rate offered and the rate
    /// accepted.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) rate: f64,
    /// Most submissions in flight at once (the submitter's concurrency).
    #[arg(long, default_value_t = 512)]
    pub(crate) in_flight: usize,
    /// Seconds a claim holds without a heartbeat (short, so stopped workers lose it).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) lease_secs: f64,
    /// Longest wait, after the faults stop, for every command to end.
    #[arg(long, default_value_t = 120)]
    pub(crate) settle_secs: u64,
    /// PostgreSQL server; the run creates and drops its own database there.
    #[arg(long, default_value = DATABASE_SERVER)]
    pub(crate) database_server: String,
    /// RabbitMQ URL, or a cluster's URLs separated by commas; the run uses and deletes its own
    /// namespace there.
    #[arg(long, default_value = AMQP_URL)]
    pub(crate) amqp_url: String,
    /// Kind of the run namespace's command queues.
    #[arg(long, value_enum, default_value = "classic")]
    pub(crate) queue_type: cmdbus::QueueTypeArg,
    /// Which faults the run injects.
    #[arg(long, value_enum, default_value = "random")]
    pub(crate) faults: FaultPlan,
    /// What `--faults node-kills` does to the leading node: SIGKILL it (its connections close
    /// at once) and start it again, or SIGSTOP it (its connections stay open and silent, like a
    /// host that hangs or is cut off) and SIGCONT it.
    #[arg(long, value_enum, default_value = "kill")]
    pub(crate) node_fault: NodeFault,
    /// The script that runs the broker cluster of `--faults node-kills`
    /// (`scripts/rabbit-cluster.sh`: `leader QUEUE`, `kill NODE`, `restart NODE`).
    #[arg(long, default_value = CLUSTER_SCRIPT)]
    pub(crate) cluster_script: std::path::PathBuf,
    /// With `--faults node-kills`: a node kill after which commands took longer than this to
    /// succeed again is a violation.
    #[arg(long)]
    pub(crate) max_recovery_secs: Option<f64>,
    /// With `--faults random`: no whole-service faults (PostgreSQL restarted or stopped
    /// immediately, every broker node killed at once). PostgreSQL and the broker are shared by
    /// everything on the machine; run with service faults only where nothing else uses them.
    #[arg(long)]
    pub(crate) no_service_faults: bool,
    /// Retention of finished commands during the run (`CMDBUS_RETENTION`: `30s`, `2m`, ...;
    /// `0` keeps them): short, so the purge runs beside replays and late events. Purged rows are
    /// archived by a trigger of the run database, so the checks still see every command.
    #[arg(long, default_value = "45s")]
    pub(crate) retention: String,
    /// Worker processes that consume the first exception lane (`CMDBUS_LANE=exceptions1`):
    /// parked commands, keyed ones included, run again beside the main lane.
    #[arg(long, default_value_t = 1)]
    pub(crate) lane_workers: usize,
    /// Nodes record effects without holding their claim: a broken handler, to see that the
    /// fencing checks catch it (such a run is expected to fail).
    #[arg(long)]
    pub(crate) unfenced: bool,
    /// Keep the database, the namespace and the process logs after the run.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// The cluster script of this checkout.
pub(crate) const CLUSTER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/rabbit-cluster.sh"
);

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FaultPlan {
    /// At random moments: workers paused past their lease, any role killed, a process's broker
    /// connection closed, database backends terminated; and, unless `--no-service-faults`,
    /// PostgreSQL restarted or stopped immediately and started again, and every broker node
    /// killed at once and started again.
    Random,
    /// One SIGKILL of each role (api, then worker, then notifier) spread over the run, each
    /// respawned: the multi-process run of the test suite.
    RoleKills,
    /// SIGKILL of the broker node leading the main command queue, then, once that node is back,
    /// of the node leading it then (`--cluster-script`); the recovery time of each is printed.
    NodeKills,
}

/// What a node fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NodeFault {
    /// SIGKILL, later a restart.
    Kill,
    /// SIGSTOP, later SIGCONT.
    Freeze,
}

impl RunArgs {
    /// The broker queue type of the run's namespace.
    pub(crate) fn bus_queue_type(&self) -> cmdbus_bus::QueueType {
        match self.queue_type {
            cmdbus::QueueTypeArg::Classic => cmdbus_bus::QueueType::Classic,
            cmdbus::QueueTypeArg::Quorum => cmdbus_bus::QueueType::Quorum,
        }
    }
}
