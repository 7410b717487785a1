//! The fault injector: at random moments it stops a worker past its lease, kills a process of
//! any role (and starts another in its place), closes one process's broker connection (on the
//! broker the run uses), or terminates some of the run database's PostgreSQL backends. Those
//! touch only the run's own processes, connections and database. With service faults on, it
//! also, at most once per `SERVICE_FAULT_GAP`, restarts PostgreSQL, stops it immediately and
//! starts it again, or kills every broker node at once (`services.rs`).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    procs::{Member, NodeRole, signal},
    services::{BrokerControl, PostgresFault},
    shared::{Shared, pick},
};

/// The least time between two whole-service faults, so that the run does more than recover.
const SERVICE_FAULT_GAP: Duration = Duration::from_secs(15);

/// Injects faults until `stop`; faults that take time (a stopped worker, a respawn) run on
/// `tracker`, so the caller can wait until every process is back. A whole-service fault runs
/// inline (nothing else is injected meanwhile), and only when `service_faults`.
pub(crate) async fn inject(
    shared: Arc<Shared>,
    mut rng: fastrand::Rng,
    lease: Duration,
    broker: BrokerControl,
    service_faults: bool,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    // The first one comes after the run got going.
    let mut last_service_fault = Instant::now();
    // Each kind once, in a seeded order, before any kind again: a short run sees them all.
    let mut service_kinds: Vec<ServiceFault> = Vec::new();
    loop {
        let pause = Duration::from_millis(rng.u64(1_000..3_500));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        if service_faults && last_service_fault.elapsed() >= SERVICE_FAULT_GAP && rng.bool() {
            if service_kinds.is_empty() {
                service_kinds = vec![
                    ServiceFault::PostgresRestart,
                    ServiceFault::PostgresCrash,
                    ServiceFault::BrokerKill,
                ];
                rng.shuffle(&mut service_kinds);
            }
            if let Some(kind) = service_kinds.pop() {
                service_fault(&shared, kind, &broker).await;
            }
            last_service_fault = Instant::now();
            continue;
        }
        match rng.u8(0..4) {
            0 => {
                let Some(worker) = pick(&mut rng, &shared.cluster.members(Some(NodeRole::Worker)))
                else {
                    continue;
                };
                if !shared.cluster.take(&worker) {
                    continue;
                }
                let pause = lease + Duration::from_millis(rng.u64(500..3_000));
                shared.counts.stops.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tracker.spawn(async move {
                    signal(worker.pid, "STOP").await;
                    tokio::time::sleep(pause).await; // the fault itself: paused past the lease
                    signal(worker.pid, "CONT").await;
                    shared.cluster.give_back(&worker);
                });
            }
            1 => {
                let Some(victim) = pick(&mut rng, &shared.cluster.members(None)) else {
                    continue;
                };
                if !shared.cluster.take(&victim) {
                    continue;
                }
                shared.counts.kills.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tracker.spawn(async move {
                    if let Err(error) = shared.cluster.kill_and_respawn(&victim).await {
                        eprintln!("respawn of a {} failed: {error:#}", victim.role.name());
                    }
                });
            }
            2 => {
                let Some(victim) = pick(&mut rng, &shared.cluster.members(None)) else {
                    continue;
                };
                let (shared, broker) = (shared.clone(), broker.clone());
                let name = format!("cmdbus {} {}", victim.role.connection_label(), victim.pid);
                tracker.spawn(async move {
                    if broker.close_connection(&name).await {
                        shared.counts.closes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            _ => {
                let fraction = rng.f64();
                match terminate_backends(&shared, &mut rng, fraction).await {
                    Ok(n) if n > 0 => {
                        shared.counts.terminations.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("cannot terminate backends: {error}"),
                }
            }
        }
    }
}

/// A whole-service fault.
#[derive(Debug, Clone, Copy)]
enum ServiceFault {
    PostgresRestart,
    PostgresCrash,
    BrokerKill,
}

/// One whole-service fault: PostgreSQL restarted, PostgreSQL stopped immediately and started,
/// or every broker node killed and started. The processes reconnect by themselves.
async fn service_fault(shared: &Shared, kind: ServiceFault, broker: &BrokerControl) {
    let (what, done, counter) = match kind {
        ServiceFault::PostgresRestart => (
            "PostgreSQL restart",
            crate::services::postgres(PostgresFault::Restart).await,
            &shared.counts.pg_restarts,
        ),
        ServiceFault::PostgresCrash => (
            "PostgreSQL immediate stop and start",
            crate::services::postgres(PostgresFault::Crash).await,
            &shared.counts.pg_crashes,
        ),
        ServiceFault::BrokerKill => (
            "every broker node killed and started",
            broker.kill_every_node().await,
            &shared.counts.broker_kills,
        ),
    };
    match done {
        Ok(()) => {
            counter.fetch_add(1, Ordering::Relaxed);
            println!("service fault: {what}");
        }
        // The services must come back for the run to mean anything.
        Err(error) => shared.violation(format!("service fault {what} failed: {error:#}")),
    }
}

/// Terminates about `fraction` of the run database's backends (never the checker's own).
async fn terminate_backends(
    shared: &Shared,
    rng: &mut fastrand::Rng,
    fraction: f64,
) -> anyhow::Result<usize> {
    let backends: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = $1 and pid <> pg_backend_pid() and application_name <> $2
         order by pid",
    )
    .bind(&shared.database)
    .bind(crate::shared::APPLICATION_NAME)
    .fetch_all(&shared.pool)
    .await?;
    let chosen: Vec<i32> = backends
        .into_iter()
        .filter(|_| rng.f64() < fraction)
        .collect();
    for pid in &chosen {
        sqlx::query("select pg_terminate_backend($1)")
            .bind(pid)
            .execute(&shared.pool)
            .await?;
    }
    Ok(chosen.len())
}

/// One SIGKILL of each role, spread over the run — an api at a quarter of `duration`, a worker
/// (the one running most commands) at 45 %, a notifier at 65 % — each respawned at once.
pub(crate) async fn kill_each_role(
    shared: Arc<Shared>,
    duration: Duration,
    stop: CancellationToken,
) {
    let start = tokio::time::Instant::now();
    for (fraction, role) in [
        (0.25, NodeRole::Api),
        (0.45, NodeRole::Worker),
        (0.65, NodeRole::Notifier),
    ] {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(start + duration.mul_f64(fraction)) => {}
        }
        let members = shared.cluster.members(Some(role));
        let victim = if role == NodeRole::Worker {
            busiest_worker(&shared, &members).await
        } else {
            members.first().copied()
        };
        let Some(victim) = victim.filter(|victim| shared.cluster.take(victim)) else {
            shared.violation(format!("no {} to kill", role.name()));
            continue;
        };
        shared.counts.kills.fetch_add(1, Ordering::Relaxed);
        println!("killing {} {} (SIGKILL)", role.name(), victim.pid);
        if let Err(error) = shared.cluster.kill_and_respawn(&victim).await {
            eprintln!("respawn of a {} failed: {error:#}", victim.role.name());
        }
    }
}

/// The worker holding the most running commands (its pid is in each lease's worker name), so
/// that its death leaves commands mid-run.
async fn busiest_worker(shared: &Shared, workers: &[Member]) -> Option<Member> {
    let running: Vec<String> =
        sqlx::query_scalar("select worker from commands where status = 'running'")
            .fetch_all(&shared.pool)
            .await
            .unwrap_or_default();
    workers.iter().copied().max_by_key(|worker| {
        let tag = format!("-{}-", worker.pid);
        running.iter().filter(|name| name.contains(&tag)).count()
    })
}
