//! `cmdbus-bench fanout`: what many open WebSockets cost the notifier. The same window of load
//! runs without and then with the idle subscribers attached; in between, the server's resident
//! memory before and after opening them gives the memory per connection, and a quiet spell with
//! them open shows what they cost when nothing happens.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    args::FanoutArgs,
    cpu::{Accounting, Group},
    load::Submitter,
    phase, procfs,
    report::latency_table,
    track::Tracker,
    ws::{Crowd, CrowdSpec, Watcher},
};

/// How long the server is left alone before reading its memory, and how long the quiet spells
/// whose CPU is measured last.
const SETTLE: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_secs(3);

pub(crate) async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    crate::raise_open_files(args.sockets);
    let accounting = args.server.accounting();
    let tracker = Arc::new(Tracker::new());
    let watcher = Watcher::start(&args.server, Arc::clone(&tracker)).await?;
    let submitter = Submitter::new(&args.server, &args.load)?;
    let server_pid = server_pid(&args.server.server_pids);

    let without = phase::run(&submitter, &tracker, &watcher, &args.load, &accounting).await;
    print!(
        "{}",
        phase::render("fan-out, without idle subscribers", &without)
    );
    let quiet_before = quiet_cmdbus_cores(&accounting).await;

    let rss_before = server_pid.and_then(procfs::vm_rss_kib);
    let spec = CrowdSpec {
        sockets: args.sockets,
        all: args.all.min(args.sockets),
        ids: args.ids,
        parallel: args.connect_parallel,
    };
    let crowd = Crowd::open(&args.server, spec).await;
    tokio::time::sleep(SETTLE).await;
    let rss_after = server_pid.and_then(procfs::vm_rss_kib);
    println!(
        "\nfan-out: {} idle subscribers open ({} subscribed to all, the others to {} ids each) \
         in {:.1} s{}",
        crowd.opened,
        spec.all,
        spec.ids,
        crowd.took.as_secs_f64(),
        refusals(&crowd.refused)
    );
    match (rss_before, rss_after) {
        (Some(before), Some(after)) if crowd.opened > 0 => println!(
            "  cmdbus VmRSS {:.1} MiB → {:.1} MiB: {:.1} KiB per connection",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after.saturating_sub(before) as f64 / crowd.opened as f64
        ),
        _ => println!("  cmdbus VmRSS: unknown (pass --server-pid)"),
    }
    let quiet_after = quiet_cmdbus_cores(&accounting).await;
    println!(
        "  cmdbus CPU with no load: {:.3} cores without them, {:.3} cores with them",
        quiet_before, quiet_after
    );

    crowd.record(true);
    let with = phase::run(&submitter, &tracker, &watcher, &args.load, &accounting).await;
    crowd.record(false);
    println!();
    print!(
        "{}",
        phase::render(
            &format!("fan-out, with {} idle subscribers", crowd.opened),
            &with
        )
    );
    let delivery = crowd.delivery();
    print!(
        "{}",
        latency_table(&[(
            &format!("committed → pushed to {} `all` sockets", spec.all),
            &delivery
        )])
    );
    let closed = crowd.closed_by_server();
    if !closed.is_empty() {
        println!("  note: idle subscribers closed by the server: {closed:?}");
    }
    let ratio = with.per_sec() / without.per_sec().max(1e-9);
    println!(
        "  throughput with them {:.0}/s against {:.0}/s without: {:.0}%; cmdbus CPU per command \
         {:.2} ms against {:.2} ms\n",
        with.per_sec(),
        without.per_sec(),
        ratio * 100.0,
        cmdbus_ms_per_command(&with),
        cmdbus_ms_per_command(&without)
    );
    crowd.close().await;
    Ok(())
}

/// The cmdbus process whose memory is read: the one given, or the only one running.
pub(crate) fn server_pid(given: &[u32]) -> Option<u32> {
    match given {
        [pid, ..] => Some(*pid),
        [] => match procfs::pids_named("cmdbus").as_slice() {
            [pid] => Some(*pid),
            _ => None,
        },
    }
}

fn cmdbus_ms_per_command(phase: &phase::Phase) -> f64 {
    let commands = phase.measured.successes_in_window.max(1) as f64;
    phase.usage.seconds(Group::Cmdbus) * 1e3 / commands
}

/// Cores cmdbus keeps busy while nothing is submitted.
async fn quiet_cmdbus_cores(accounting: &Accounting) -> f64 {
    let before = accounting.sample();
    tokio::time::sleep(QUIET).await;
    let usage = accounting.usage(&before, &accounting.sample());
    usage.seconds(Group::Cmdbus) / usage.window.as_secs_f64().max(1e-9)
}

/// `; refused: …` when some sockets could not be opened.
pub(crate) fn refusals(refused: &BTreeMap<String, usize>) -> String {
    if refused.is_empty() {
        String::new()
    } else {
        let reasons: Vec<String> = refused
            .iter()
            .map(|(why, count)| format!("{count} × {why}"))
            .collect();
        format!("; refused: {}", reasons.join(", "))
    }
}
