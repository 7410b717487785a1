//! `cmdbus-bench e2e|fanout|limits|keyed|soak|cleanup`: the load generator of cmdbus's benchmark (see
//! docs/benchmarks.md). It drives a running cmdbus over HTTP and WebSocket, as clients would, and
//! reads what each process spent from `/proc`. It prints figures; it never fails on speed.
//!
//! Layout: `main.rs` parses `args.rs` and calls one scenario: `e2e.rs` and `fanout.rs` run
//! windows of load through `phase.rs`, which drives `load.rs` (the HTTP submitters) and `ws.rs`
//! (the watcher and the idle crowds), times each command in `track.rs` and prints with
//! `report.rs`; `limits/` measures PostgreSQL (`postgres.rs`) and RabbitMQ (`broker.rs`)
//! without cmdbus; `keyed.rs` drains a burst of keyed commands; `soak.rs` runs
//! windows in a row and watches cmdbus's memory; `cleanup.rs` deletes a run's namespace. `cpu.rs` and `procfs.rs`, at the
//! bottom, read what each process spent from `/proc`.

mod args;
mod cleanup;
mod cpu;
mod e2e;
mod fanout;
mod keyed;
mod limits;
mod load;
mod phase;
mod procfs;
mod report;
mod soak;
mod track;
mod ws;

use clap::Parser as _;

use args::{Cli, Scenario};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::E2e(args) => e2e::run(args).await,
        Scenario::Fanout(args) => fanout::run(args).await,
        Scenario::Limits(args) => limits::run(args).await,
        Scenario::Keyed(args) => keyed::run(args).await,
        Scenario::Soak(args) => soak::run(args).await,
        Scenario::Cleanup(args) => cleanup::run(args).await,
    }
}

/// Raises the soft limit of open files to the hard one: `sockets` WebSockets need as many
/// descriptors, plus the HTTP connections and the rest.
pub(crate) fn raise_open_files(sockets: usize) {
    let wanted = sockets as u64 + 1024;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => eprintln!(
            "warning: the open-files limit is {limit}, {sockets} sockets need about {wanted}; \
             raise the hard limit (ulimit -Hn)"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("warning: cannot raise the open-files limit: {error}"),
    }
}
