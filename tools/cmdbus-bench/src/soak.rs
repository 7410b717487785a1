//! `cmdbus-bench soak`: the same open-loop load for many windows in a row (ten one-minute
//! windows by default), one line each: throughput, push latency, CPU per command and the
//! memory cmdbus holds. Memory that climbs window after window is a leak; figures that drift
//! are a backlog building up somewhere.

use std::sync::Arc;

use crate::{
    args::SoakArgs,
    cpu::Group,
    fanout::server_pid,
    load::Submitter,
    phase::{self, Phase},
    procfs,
    report::{Summary, millis},
    track::Tracker,
    ws::Watcher,
};

pub(crate) async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let accounting = args.server.accounting();
    let tracker = Arc::new(Tracker::new());
    let watcher = Watcher::start(&args.server, Arc::clone(&tracker)).await?;
    let submitter = Submitter::new(&args.server, &args.load)?;
    let pid = server_pid(&args.server.server_pids);
    let rss_at_start = pid.and_then(procfs::vm_rss_kib);
    println!(
        "soak: {}, {} windows of {:.0} s; cmdbus VmRSS at the start {}",
        args.load.describe(),
        args.windows,
        args.load.duration.as_secs_f64(),
        mib(rss_at_start)
    );
    println!(
        "  {:>6} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "window",
        "commands/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "pg",
        "rabbit",
        "cmdbus",
        "other",
        "RSS MiB"
    );
    let mut load = args.load.clone();
    let mut rss = Vec::with_capacity(args.windows);
    for window in 1..=args.windows {
        let phase = phase::run(&submitter, &tracker, &watcher, &load, &accounting).await;
        // Only the first window warms up; the rest follow on at once.
        load.warmup = std::time::Duration::ZERO;
        let kib = pid.and_then(procfs::vm_rss_kib);
        rss.extend(kib);
        println!("  {}", line(window, &phase, kib));
        for note in phase.notes() {
            println!("         note: {note}");
        }
    }
    match (rss.first(), rss.iter().max(), rss.last()) {
        (Some(first), Some(peak), Some(last)) => println!(
            "  cmdbus VmRSS after the first window {}, at its peak {}, after the last {}",
            mib(Some(*first)),
            mib(Some(*peak)),
            mib(Some(*last))
        ),
        _ => println!("  cmdbus VmRSS: unknown (pass --server-pid)"),
    }
    println!("  (cpu: milliseconds per command pushed in the window; other: the generator)");
    println!();
    Ok(())
}

/// One window's row.
fn line(window: usize, phase: &Phase, rss_kib: Option<u64>) -> String {
    let commands = phase.measured.successes_in_window.max(1) as f64;
    let ms = |duration| format!("{:.1}", millis(duration));
    let cpu = |group| format!("{:.3}", phase.usage.seconds(group) * 1e3 / commands);
    let (p50, p99, p999) = match phase.measured.pushed.summary() {
        Some(Summary { p50, p99, p999, .. }) => (ms(p50), ms(p99), ms(p999)),
        None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
    };
    format!(
        "{window:>6} {:>10.0} {p50:>9} {p99:>9} {p999:>9} {:>8} {:>8} {:>8} {:>8} {:>10}",
        phase.per_sec(),
        cpu(Group::Postgres),
        cpu(Group::RabbitMq),
        cpu(Group::Cmdbus),
        cpu(Group::Generator),
        mib(rss_kib)
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_owned(),
        |kib| format!("{:.1}", kib as f64 / 1024.0),
    )
}
