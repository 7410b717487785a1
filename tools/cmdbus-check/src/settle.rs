//! The end of a run: wait (bounded) until every command is terminal, the clients caught up and
//! the work queues drained, stop the processes, run every check, print the counts, clean up.

use sqlx::{PgPool, postgres::PgConnectOptions};
use std::{str::FromStr, sync::Arc, sync::atomic::Ordering, time::Duration};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    args::RunArgs,
    checks,
    clients::ClientLog,
    handler::WORK,
    promise::Promise,
    queues::CheckBroker,
    services::BrokerControl,
    shared::{MAX_LEASE_LOSSES, PARTITIONS, Shared},
};

/// How often the settle phase looks at PostgreSQL, the clients and the broker again.
const POLL: Duration = Duration::from_millis(500);
/// How often the settle phase says what it still waits for.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Longest wait for the clients to hold PostgreSQL's view of every command.
const CATCH_UP: Duration = Duration::from_secs(30);
/// Longest wait for stray messages (a deferral, a stale duplicate) to leave the work queues:
/// longer than the 30 s delay tier.
const DRAIN: Duration = Duration::from_secs(45);

/// Messages of `queues` that consumers hold unacknowledged, as `rabbitmqctl` counts them;
/// unreadable counts as none (the ready counts still hold the drain).
async fn unsettled(control: &BrokerControl, queues: &[String]) -> u64 {
    let Ok(listing) = control
        .ctl(&["-q", "list_queues", "name", "messages_unacknowledged"])
        .await
    else {
        return 0;
    };
    listing
        .lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .filter(|(name, _)| queues.iter().any(|queue| queue == name))
        .filter_map(|(_, count)| count.trim().parse::<u64>().ok())
        .sum()
}

/// Everything after the faults stopped; returns each promise as checked.
pub(crate) async fn settle_and_check(
    args: &RunArgs,
    shared: &Arc<Shared>,
    logs: &[Arc<ClientLog>],
    calm: &CancellationToken,
) -> anyhow::Result<Vec<Promise>> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.settle_secs);
    let mut next_report = started + REPORT_EVERY;
    loop {
        let open: Result<Vec<(String, i64)>, _> = sqlx::query_as(
            "select status, count(*) from commands
             where status not in ('success', 'fail', 'cancelled') group by status order by status",
        )
        .fetch_all(&shared.pool)
        .await;
        if matches!(&open, Ok(open) if open.is_empty()) || Instant::now() >= deadline {
            break;
        }
        if Instant::now() >= next_report {
            println!("settling: still open {open:?}");
            next_report += REPORT_EVERY;
        }
        tokio::time::sleep(POLL).await; // polling PostgreSQL's state
    }
    println!("settled in {:.1}s", started.elapsed().as_secs_f64());
    // Told apart while the processes still run, so "moving" means what it says.
    let accepted = shared.lock_accepted().clone();
    let unfinished =
        checks::unfinished(&shared.pool, &accepted, started.elapsed().as_secs_f64()).await?;

    // Commands still open when the settle time ran out keep changing until the processes stop,
    // after the clients' last chance to catch up: their ending is the "every accepted command
    // ends" promise's, and the clients are held to every other command.
    let open: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar(
        "select id from commands where status not in ('success', 'fail', 'cancelled')",
    )
    .fetch_all(&shared.pool)
    .await?
    .into_iter()
    .collect();
    calm.cancel();
    let rows = checks::final_views(&shared.pool).await?;
    let caught_up = Instant::now() + CATCH_UP;
    while Instant::now() < caught_up
        && logs
            .iter()
            .enumerate()
            .any(|(index, log)| !checks::client_mismatches(index, log, &rows, &open).is_empty())
    {
        tokio::time::sleep(POLL).await; // polling the clients' logs
    }

    let broker = CheckBroker::connect(
        &args.amqp_url,
        &shared.namespace,
        PARTITIONS,
        args.bus_queue_type(),
    )
    .await?;
    // Ready messages and the ones workers fetched but have not settled yet (a worker's prefetch
    // hides a tail of stale copies from the ready count; stopping it would put them back).
    let control = BrokerControl::of(&args.amqp_url, &args.cluster_script).await;
    let drained = Instant::now() + DRAIN;
    while Instant::now() < drained
        && (!broker.work_queues_with_messages(WORK).await.is_empty()
            || unsettled(&control, &broker.work_queues(WORK)).await > 0)
    {
        tokio::time::sleep(POLL).await; // polling the broker's counts
    }
    shared.cluster.stop_all(Duration::from_secs(20)).await;

    let mut promises =
        checks::database(&shared.pool, &accepted, unfinished, MAX_LEASE_LOSSES).await?;
    let rows = checks::final_views(&shared.pool).await?;
    let mut violations = Vec::new();
    let (mut mismatched, mut problems) = (0, 0);
    for (index, log) in logs.iter().enumerate() {
        let mismatches = checks::client_mismatches(index, log, &rows, &open);
        mismatched += mismatches.len();
        violations.extend(mismatches.iter().take(10).cloned());
        if mismatches.len() > 10 {
            violations.push(format!(
                "client {index}: ... {} mismatches in all",
                mismatches.len()
            ));
        }
        let said = log.problems();
        problems += said.len();
        violations.extend(
            said.into_iter()
                .map(|problem| format!("client {index}: {problem}")),
        );
    }
    let counts = &shared.counts;
    promises.push(Promise::new(
        "every client ends with PostgreSQL's view",
        format!(
            "clients={} mismatches={mismatched} problems={problems} reconnects={} resets={} \
             unchecked_open_at_settle={}",
            logs.len(),
            counts.reconnects.load(Ordering::Relaxed),
            counts.resets.load(Ordering::Relaxed),
            open.len(),
        ),
        violations,
    ));
    let mut violations = Vec::new();
    let held = broker.work_queues_with_messages(WORK).await;
    for (queue, depth) in &held {
        violations.push(format!("{queue} still holds {depth} messages"));
    }
    let (parked, superseded, strays) = broker.stray_parked(&shared.pool, WORK).await?;
    let stray_count = strays.len();
    violations.extend(strays);
    broker.close().await;
    promises.push(Promise::new(
        "no work message left, only parked failures parked",
        format!(
            "work_queues_holding={} parked={parked} superseded_parked={superseded} \
             strays={stray_count}",
            held.len()
        ),
        violations,
    ));
    Ok(promises)
}

/// Prints the counts line, the submitter's pace, one line per promise, the recovery of each
/// broker node kill and every violation; true when there was no violation.
pub(crate) async fn report(
    shared: &Shared,
    recoveries: &[crate::cluster::Recovery],
    promises: &[Promise],
) -> bool {
    let census = checks::census(&shared.pool).await.unwrap_or_default();
    let counts = &shared.counts;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let violations: usize = promises
        .iter()
        .map(|promise| promise.violations.len())
        .sum();
    println!(
        "seed={} accepted={} rows={} success={} fail={} cancelled={} effects={} replays={} \
         cancels={} faults: stop={} kill={} close_conn={} pg_terminate={} pg_restart={} \
         pg_crash={} broker_kill_all={} client_reconnects={} resets={} max_attempt={} \
         node_kills={} violations={}",
        shared.seed,
        shared.lock_accepted().len(),
        census.rows,
        census.success,
        census.fail,
        census.cancelled,
        census.effects,
        load(&counts.replays),
        load(&counts.cancels),
        load(&counts.stops),
        load(&counts.kills),
        load(&counts.closes),
        load(&counts.terminations),
        load(&counts.pg_restarts),
        load(&counts.pg_crashes),
        load(&counts.broker_kills),
        load(&counts.reconnects),
        load(&counts.resets),
        census.max_attempt,
        recoveries.len(),
        violations,
    );
    let [block, spin, panic, hold] = census.hostile;
    println!(
        "handlers: block={block} spin={spin} panic={panic} hold={hold} lane_reruns={} \
         (keyed {})",
        census.lane_runs, census.keyed_lane_runs
    );
    if let Some(pace) = *shared.lock_pace() {
        let offering = pace.offering.as_secs_f64().max(f64::EPSILON);
        let accepted = shared.lock_accepted().len();
        let [p50, p99, max] = shared.latency_quantiles([0.5, 0.99, 1.0]);
        println!(
            "submitter: offered={} in {offering:.1}s ({:.1}/s); accepted={} within the run \
             ({:.1}/s), {accepted} in all by {:.1}s; held back by --in-flight {:.1}s; \
             refused={}; latency ms p50={p50} p99={p99} max={max}",
            pace.offered,
            pace.offered as f64 / offering,
            pace.accepted_in_time,
            pace.accepted_in_time as f64 / offering,
            pace.drained.as_secs_f64(),
            pace.held_back.as_secs_f64(),
            load(&counts.refused),
        );
    }
    for promise in promises {
        println!(
            "promise {:<56} {} {}",
            format!("\"{}\":", promise.name),
            if promise.violated() { "VIOLATED" } else { "ok" },
            promise.counts
        );
    }
    for (index, recovery) in recoveries.iter().enumerate() {
        let seconds = recovery
            .seconds
            .map_or_else(|| "never".to_owned(), |seconds| format!("{seconds:.2}s"));
        let slowest = recovery
            .slowest_start
            .map_or_else(|| "none".to_owned(), |seconds| format!("{seconds:.2}s"));
        println!(
            "node kill {}: broker node {} at {}, commands succeeded again after {seconds}; \
             slowest start of a command submitted in the next 10 s: {slowest}",
            index + 1,
            recovery.kill.node,
            recovery.kill.at.format("%H:%M:%S%.3f"),
        );
    }
    for promise in promises {
        for violation in &promise.violations {
            println!("VIOLATION {violation}");
        }
    }
    violations == 0
}

/// Deletes the namespace's queues and exchanges and drops the run database.
pub(crate) async fn clean_up(
    amqp_url: &str,
    queue_type: cmdbus_bus::QueueType,
    pool: &PgPool,
    database_url: &str,
    namespace: &str,
) {
    let mut kinds = cmdbus::builtin_registry().names();
    kinds.push(WORK.to_owned());
    match CheckBroker::connect(amqp_url, namespace, PARTITIONS, queue_type).await {
        Ok(broker) => {
            if let Err(error) = broker.broker.delete_topology(&kinds).await {
                eprintln!("cannot delete namespace {namespace}: {error}");
            }
            broker.close().await;
        }
        Err(error) => eprintln!("cannot delete namespace {namespace}: {error:#}"),
    }
    pool.close().await;
    let dropped = match PgConnectOptions::from_str(database_url) {
        Ok(options) => cmdbus_store::drop_database(&options)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = dropped {
        eprintln!("cannot drop the run database: {error:#}");
    }
}
