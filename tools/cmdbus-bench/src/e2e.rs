//! `cmdbus-bench e2e`: one window of load, optionally with idle subscribers attached, and its
//! report.

use std::sync::Arc;

use crate::{
    args::E2eArgs,
    load::Submitter,
    phase,
    report::Recorded,
    track::Tracker,
    ws::{Crowd, CrowdSpec, Watcher},
};

pub(crate) async fn run(args: E2eArgs) -> anyhow::Result<()> {
    let accounting = args.server.accounting();
    let tracker = Arc::new(Tracker::new());
    let watcher = Watcher::start(&args.server, Arc::clone(&tracker)).await?;
    let submitter = Submitter::new(&args.server, &args.load)?;
    let crowd = if args.idle > 0 {
        crate::raise_open_files(args.idle);
        let crowd = Crowd::open(
            &args.server,
            CrowdSpec {
                sockets: args.idle,
                all: 0,
                ids: 3,
                parallel: 64,
            },
        )
        .await;
        println!(
            "{} idle subscribers open in {:.1} s{}",
            crowd.opened,
            crowd.took.as_secs_f64(),
            crate::fanout::refusals(&crowd.refused)
        );
        Some(crowd)
    } else {
        None
    };
    let phase = phase::run(&submitter, &tracker, &watcher, &args.load, &accounting).await;
    let title = match args.idle {
        0 => "e2e".to_owned(),
        idle => format!("e2e with {idle} idle subscribers"),
    };
    print!("{}", phase::render(&title, &phase));
    if let Some(crowd) = crowd {
        let closed = crowd.closed_by_server();
        if !closed.is_empty() {
            println!("  note: idle subscribers closed by the server: {closed:?}");
        }
        crowd.close().await;
    }
    println!();
    if let Some(path) = &args.record {
        Recorded {
            load: phase.load.clone(),
            per_sec: phase.per_sec(),
        }
        .save(path)?;
    }
    Ok(())
}
