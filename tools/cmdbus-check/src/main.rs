//! `cmdbus-check`: a randomized fault run of real cmdbus processes, reproducible from a seed,
//! checked at the end against PostgreSQL, the broker and every WebSocket client's log.
//!
//! Run it (PostgreSQL and RabbitMQ on this machine, as for the test suite):
//!
//! ```text
//! cargo run -p cmdbus-check -- run --seed 7 --duration 90 --rate 300 --no-service-faults
//! cargo run -p cmdbus-check -- run --seed 7 --duration 90   # also restarts PostgreSQL and RabbitMQ
//! cargo run -p cmdbus-check -- run --seed 7 --duration 900 --apis 2 --workers 3 --notifiers 2 --clients 4 --rate 10
//! cargo run -p cmdbus-check -- run --seed 7 --duration 30 --faults role-kills
//! scripts/rabbit-cluster.sh start
//! cargo run -p cmdbus-check -- run --seed 7 --duration 90 --faults node-kills --queue-type quorum \
//!     --amqp-url "$(scripts/rabbit-cluster.sh urls)" --max-recovery-secs 5
//! ```
//!
//! `run` creates a fresh database `cmdbus_check_<tag>` and broker namespace `check<tag>`, spawns
//! api, worker, exception-lane worker and notifier processes (this binary's `node` subcommand:
//! the real roles with the checker's `check.work` handler added), and for `--duration` seconds
//! offers `--rate` commands a second without waiting for answers (ordering keys submitted one
//! after another per key, priorities, retryable and permanent failures, failures fixed before a
//! replay, long handlers, handlers that ignore cancellation, and hostile handlers that block
//! their thread, spin the CPU, panic or hold their claim's transaction open), random cancels and
//! replays, WebSocket clients that drop and resume from their cursor, retention at `--retention`
//! (45 s), and faults: SIGSTOP of a worker past its lease then SIGCONT, SIGKILL of any role
//! (respawned), closing a process's broker connection on the run's broker, terminating the run
//! database's PostgreSQL backends, and, unless `--no-service-faults`, whole-service faults:
//! PostgreSQL restarted, PostgreSQL stopped immediately and started, every broker node killed
//! at once and started. `--faults role-kills` injects only one SIGKILL of each role, spread over
//! the run (the suite's multi-process test); `--faults node-kills` runs against a broker cluster
//! (`--amqp-url` with every node, `--queue-type quorum`) and kills, through `--cluster-script`,
//! the node leading the main command queue, brings it back, then kills the node leading it then,
//! and prints how long after each kill commands succeeded again (`--max-recovery-secs` makes a
//! longer wait a violation). `--unfenced` makes the handler skip its claim check, to see the
//! fencing checks fail; `--keep` keeps the database, namespace and logs, and `cmdbus-check
//! clean <tag>` removes them later.
//!
//! Then it stops the faults, waits until every command is terminal, lets the clients catch up,
//! and checks each promise, purged rows included: every accepted command terminal (lost apart
//! from a keyed backlog still draining); at most one successful finish and one recorded effect
//! per generation, and none after a later run or generation began; per ordering key, first runs
//! in submission order and never two commands running at once; no attempt count past
//! `max_attempts + max lease losses`; every attempt row closed; retention deleting finished
//! commands only; every client's last view of each command equal to PostgreSQL's; no message
//! left in a main, partition or retry queue, and only parked failures in the exception lanes.
//! It prints a counts line, the submitter's offered and accepted rates, one `promise` line per
//! promise with its counts, and every violation, and exits non-zero on any. The seed fixes
//! every random choice; wall-clock timing still varies between runs.
//!
//! Layout: `main.rs` parses the command and calls `node.rs` (one role, with `handler.rs`'s
//! `check.work`) or `run.rs`, the loop that drives a run. `run.rs` builds `shared.rs`'s `Shared`
//! (the run's settings, processes, counts and violations, and the seeded `pick`), prepares the
//! database (`archive.rs` keeps what retention deletes), starts the processes (`procs.rs`), the
//! clients (`clients.rs`), the submitter (`submitter.rs`), the operator (`operator.rs`) and the
//! faults (`faults.rs`, with `services.rs` for the broker's control and whole-service faults, or
//! `cluster.rs` for broker nodes), then hands over to `settle.rs`, which waits and runs
//! `checks.rs` and `keys.rs` (PostgreSQL and the clients' logs; each promise a `promise.rs`
//! `Promise`) and `queues.rs` (the broker).
//! The pieces take `Shared` as an argument and never import `run.rs`; `args.rs` holds the
//! settings.
//!
//! `cmdbus-check node <api|worker|notifier|all>` is what `run` spawns: it reads every `CMDBUS_*`
//! setting like `cmdbus` does, listens on 127.0.0.1:0, prints the port on stdout and stops
//! gracefully on SIGTERM.

mod archive;
mod args;
mod checks;
mod clients;
mod cluster;
mod faults;
mod handler;
mod keys;
mod node;
mod operator;
mod procs;
mod promise;
mod queues;
mod run;
mod services;
mod settle;
mod shared;
mod submitter;

use clap::{Parser, Subcommand};

/// Randomized fault runs of cmdbus.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: CheckCommand,
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Runs one cmdbus role with the checker's handlers (spawned by `run`).
    Node {
        /// The role.
        #[command(subcommand)]
        role: cmdbus::Role,
        /// Every `CMDBUS_*` setting of the `cmdbus` binary (boxed: it dwarfs the other
        /// commands' arguments).
        #[command(flatten)]
        config: Box<cmdbus::Config>,
    },
    /// A fault run: drives commands and faults through real processes, then checks.
    Run(run::RunArgs),
    /// Removes what a `run --keep` left: its database and its namespace's queues and exchanges.
    Clean {
        /// The run's tag, as in `cmdbus_check_<tag>`.
        tag: String,
        /// PostgreSQL server.
        #[arg(long, default_value = shared::DATABASE_SERVER)]
        database_server: String,
        /// RabbitMQ URL (or a cluster's, comma-separated).
        #[arg(long, default_value = shared::AMQP_URL)]
        amqp_url: String,
        /// Kind of the run's command queues.
        #[arg(long, value_enum, default_value = "classic")]
        queue_type: cmdbus::QueueTypeArg,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = match args.command {
        CheckCommand::Node { role, config } => runtime.block_on(node::main(role, *config)),
        CheckCommand::Run(args) => runtime.block_on(run::main(args)),
        CheckCommand::Clean {
            tag,
            database_server,
            amqp_url,
            queue_type,
        } => runtime.block_on(run::clean(
            &tag,
            &database_server,
            &amqp_url,
            match queue_type {
                cmdbus::QueueTypeArg::Classic => cmdbus_bus::QueueType::Classic,
                cmdbus::QueueTypeArg::Quorum => cmdbus_bus::QueueType::Quorum,
            },
        )),
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("cmdbus-check: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
