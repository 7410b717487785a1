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
    queues::CheckBroker,
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

/// Everything after the faults stopped; returns the violations.
pub(crate) async fn settle_and_check(
    args: &RunArgs,
    shared: &Arc<Shared>,
    logs: &[Arc<ClientLog>],
    calm: &CancellationToken,
) -> anyhow::Result<Vec<String>> {
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

    calm.cancel();
    let rows = checks::final_views(&shared.pool).await?;
    let caught_up = Instant::now() + CATCH_UP;
    while Instant::now() < caught_up
        && logs
            .iter()
            .enumerate()
            .any(|(index, log)| !checks::client_mismatches(index, log, &rows).is_empty())
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
    let drained = Instant::now() + DRAIN;
    while Instant::now() < drained && !broker.work_queues_with_messages(WORK).await.is_empty() {
        tokio::time::sleep(POLL).await; // polling the broker's counts
    }
    shared.cluster.stop_all(Duration::from_secs(20)).await;

    let accepted = shared.lock_accepted().clone();
    let mut violations = checks::database(&shared.pool, &accepted, MAX_LEASE_LOSSES).await?;
    let rows = checks::final_views(&shared.pool).await?;
    for (index, log) in logs.iter().enumerate() {
        let mismatches = checks::client_mismatches(index, log, &rows);
        violations.extend(mismatches.iter().take(10).cloned());
        if mismatches.len() > 10 {
            violations.push(format!(
                "client {index}: ... {} mismatches in all",
                mismatches.len()
            ));
        }
        violations.extend(
            log.problems()
                .into_iter()
                .map(|problem| format!("client {index}: {problem}")),
        );
    }
    for (queue, depth) in broker.work_queues_with_messages(WORK).await {
        violations.push(format!("{queue} still holds {depth} messages"));
    }
    let (parked, superseded, strays) = broker.stray_parked(&shared.pool, WORK).await?;
    println!("parked messages: {parked} ({superseded} of a generation a replay superseded)");
    violations.extend(strays);
    broker.close().await;
    Ok(violations)
}

/// Prints the counts line, the recovery of each broker node kill and every violation; true when
/// there was no violation.
pub(crate) async fn report(
    shared: &Shared,
    recoveries: &[crate::cluster::Recovery],
    violations: Vec<String>,
) -> bool {
    let census = checks::census(&shared.pool).await.unwrap_or_default();
    let accepted = shared.lock_accepted().clone();
    let tally = checks::tally(&shared.pool, &accepted)
        .await
        .unwrap_or_default();
    let counts = &shared.counts;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "seed={} accepted={} rows={} success={} fail={} cancelled={} effects={} replays={} cancels={} \
         faults: stop={} kill={} close_conn={} pg_terminate={} client_reconnects={} resets={} \
         max_attempt={} lost={} run_twice={} out_of_order={} node_kills={} violations={}",
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
        load(&counts.reconnects),
        load(&counts.resets),
        census.max_attempt,
        tally.lost,
        tally.run_twice,
        tally.out_of_order,
        recoveries.len(),
        violations.len(),
    );
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
    for violation in &violations {
        println!("VIOLATION {violation}");
    }
    violations.is_empty()
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
