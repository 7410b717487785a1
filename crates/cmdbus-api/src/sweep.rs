//! Background sweeps of the api role, which keep every row moving whatever was lost on the way:
//! the lease reaper (runs whose worker died or paused, cut short when the worker's heartbeat row
//! went silent), the release of delayed commands that are due, the outbox relay (rows the broker never confirmed), redelivery (`queue` rows
//! whose message is overdue, `fail` rows whose parking publish is owed), the hand-on of held
//! keyed commands whose turn came another way, retention, and the fold of the console's counters
//! and run rollup. Rows are taken with a short
//! publish lease, so several api processes sweep side by side without publishing the same row
//! twice.

use cmdbus_bus::Broker;
use cmdbus_store::{CommandRow, Db};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{dispatch, publish};

/// How long a row taken for publishing is left to the sweeper that took it.
const PUBLISH_LEASE: Duration = Duration::from_secs(10);
/// Rows published per sweep and kind.
const BATCH: i64 = 500;
/// Due `scheduled` rows released per statement; a pass goes on while statements come back
/// full, up to `RELEASE_BATCHES` of them, so that many commands due at once drain in one pass.
const RELEASE_BATCH: i64 = 1_000;
const RELEASE_BATCHES: usize = 50;
/// Released batches being published at once.
const RELEASE_IN_FLIGHT: usize = 3;
/// Finished commands deleted per statement, and statements per retention pass.
const PURGE_BATCH: i64 = 1_000;
const PURGE_BATCHES: usize = 20;
/// How often retention runs (and long-dead workers' rows are forgotten).
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// A worker's heartbeat row unwritten this long is deleted: its runs went to others long ago.
const FORGET_WORKERS_AFTER: Duration = Duration::from_secs(3600);
/// How often the counters and the run rollup are folded (each key's appended rows into one).
const FOLD_EVERY: Duration = Duration::from_secs(10);
/// The minutes of the run rollup a fold looks at: runs are appended to the minute they end in.
const FOLD_RECENT: Duration = Duration::from_secs(600);
/// How long the run rollup is kept (`GET /v1/stats` reads hours back this far).
const STATS_KEPT: Duration = Duration::from_secs(8 * 24 * 3600);

/// Sweep settings.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// How often the sweeps run.
    pub interval: Duration,
    /// A `new` row younger than this is still being published by its request.
    pub relay_after: Duration,
    /// A lease expired this long ago means its worker is gone.
    pub reap_after: Duration,
    /// Lease losses a command survives; one more fails it with `lease_lost`.
    pub max_lease_losses: i32,
    /// How long a `queue` row may wait unclaimed before its message is published again.
    pub redeliver_after: Duration,
    /// Finished commands older than this are deleted; `None` keeps them forever.
    pub retention: Option<Duration>,
}

/// Runs the sweeps until `shutdown`.
pub async fn run_sweeps(
    config: SweepConfig,
    pool: Db,
    broker: Broker,
    shutdown: CancellationToken,
) {
    let mut purged_at: Option<Instant> = None;
    let mut forgot_at: Option<Instant> = None;
    let mut folded_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        reap(&config, &pool, &broker).await;
        if broker.is_connected() {
            release(&config, &pool, &broker).await;
            relay(&config, &pool, &broker).await;
            redeliver(&config, &pool, &broker).await;
            hand_on(&config, &pool, &broker).await;
        }
        if let Some(retention) = config.retention
            && purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY)
        {
            purged_at = Some(Instant::now());
            purge(&pool, retention).await;
        }
        if folded_at.is_none_or(|at| at.elapsed() >= FOLD_EVERY) {
            folded_at = Some(Instant::now());
            if let Err(error) = cmdbus_store::fold(&pool, FOLD_RECENT, STATS_KEPT).await {
                tracing::warn!(%error, "cannot fold the counters and the run rollup");
            }
        }
        if forgot_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            forgot_at = Some(Instant::now());
            if let Err(error) = cmdbus_store::forget_workers(&pool, FORGET_WORKERS_AFTER).await {
                tracing::warn!(%error, "cannot forget long-dead workers");
            }
        }
    }
}

async fn reap(config: &SweepConfig, pool: &Db, broker: &Broker) {
    // First cut the leases of workers that stopped heartbeating, so that this pass reaps them.
    match cmdbus_store::release_silent_workers(pool).await {
        Ok(0) => {}
        Ok(count) => {
            tracing::warn!(
                count,
                "released the runs of workers that stopped heartbeating"
            );
            metrics::counter!("cmdbus_worker_runs_released_total").increment(count);
        }
        Err(error) => tracing::warn!(%error, "cannot release silent workers' runs"),
    }
    match cmdbus_store::reap_expired(pool, config.reap_after, config.max_lease_losses, None).await {
        Ok(rows) if !rows.is_empty() => {
            tracing::warn!(
                count = rows.len(),
                "reaped the runs of dead or paused workers"
            );
            metrics::counter!("cmdbus_reaped_total").increment(rows.len() as u64);
            // Their messages are due at once: redelivery publishes them below.
            broker.announce(rows.iter().map(CommandRow::event)).await;
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "reaper failed"),
    }
}

/// Releases the `scheduled` commands that are due: each batch moves to `new` in one statement
/// and is published in one burst of confirms (then `queue`, or held for its key), like a fresh
/// submit. A row whose publish is not confirmed stays `new`, and the relay publishes it. The
/// next batch is taken while earlier ones are published (`RELEASE_IN_FLIGHT` at once), so the
/// database and the broker work side by side.
async fn release(config: &SweepConfig, pool: &Db, broker: &Broker) {
    let started = Instant::now();
    let mut released = 0;
    let mut publishing = tokio::task::JoinSet::new();
    for _ in 0..RELEASE_BATCHES {
        let rows = match cmdbus_store::release_due(pool, PUBLISH_LEASE, RELEASE_BATCH).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot release due commands");
                break;
            }
        };
        let full = rows.len() as i64 == RELEASE_BATCH;
        released += rows.len();
        if !rows.is_empty() {
            let (pool, broker) = (pool.clone(), broker.clone());
            let redeliver_after = config.redeliver_after;
            // Their change is announced once, by the dispatch, as `queue` (or `new` by the
            // tail, should the publish fail): one events message per batch, not two.
            publishing.spawn(async move { dispatch(&pool, &broker, redeliver_after, rows).await });
        }
        while publishing.len() >= RELEASE_IN_FLIGHT {
            published(publishing.join_next().await);
        }
        if !full {
            break;
        }
    }
    while let Some(done) = publishing.join_next().await {
        published(Some(done));
    }
    if released > 0 {
        tracing::info!(
            count = released,
            took_ms = started.elapsed().as_millis() as u64,
            "released due commands"
        );
        metrics::counter!("cmdbus_released_total").increment(released as u64);
    }
}

/// Logs a released batch whose `queue` update failed (the relay publishes it again).
fn published(
    done: Option<Result<Result<Vec<CommandRow>, cmdbus_store::StoreError>, tokio::task::JoinError>>,
) {
    match done {
        Some(Ok(Err(error))) => {
            tracing::warn!(%error, "cannot mark released commands queued; the relay will");
        }
        Some(Err(error)) => tracing::warn!(%error, "releasing due commands failed"),
        Some(Ok(Ok(_))) | None => {}
    }
}

async fn relay(config: &SweepConfig, pool: &Db, broker: &Broker) {
    match cmdbus_store::take_unpublished(pool, config.relay_after, PUBLISH_LEASE, BATCH).await {
        Ok(rows) if !rows.is_empty() => {
            tracing::info!(count = rows.len(), "relaying unpublished commands");
            metrics::counter!("cmdbus_relayed_total").increment(rows.len() as u64);
            if let Err(error) = dispatch(pool, broker, config.redeliver_after, rows).await {
                tracing::warn!(%error, "relay failed");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "relay failed"),
    }
}

async fn redeliver(config: &SweepConfig, pool: &Db, broker: &Broker) {
    let rows = cmdbus_store::take_redeliveries(pool, PUBLISH_LEASE, BATCH).await;
    publish_taken(config, pool, broker, rows, "cmdbus_redelivered_total").await;
}

/// Publishes held commands whose key's turn came without a hand-on (a cancel, a run reaped into
/// a lane, a worker that died between its finish and its hand-on).
async fn hand_on(config: &SweepConfig, pool: &Db, broker: &Broker) {
    let rows = cmdbus_store::take_turns(pool, PUBLISH_LEASE, BATCH).await;
    publish_taken(config, pool, broker, rows, "cmdbus_handed_on_total").await;
}

/// Publishes the rows a sweep took (counted in `counter`) and records which the broker
/// confirmed; the others are taken again once their publish lease ends.
async fn publish_taken(
    config: &SweepConfig,
    pool: &Db,
    broker: &Broker,
    taken: Result<Vec<CommandRow>, cmdbus_store::StoreError>,
    counter: &'static str,
) {
    let rows = match taken {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, counter, "sweep failed");
            return;
        }
    };
    tracing::info!(count = rows.len(), counter, "publishing swept commands");
    metrics::counter!(counter).increment(rows.len() as u64);
    let confirmed = publish(broker, &rows).await;
    if let Err(error) = cmdbus_store::redelivered(pool, &confirmed, config.redeliver_after).await {
        tracing::warn!(%error, "cannot record redelivery");
    }
}

async fn purge(pool: &Db, retention: Duration) {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    let cutoff = chrono::Utc::now() - retention;
    let mut deleted = 0;
    for _ in 0..PURGE_BATCHES {
        match cmdbus_store::purge_finished(pool, cutoff, PURGE_BATCH).await {
            Ok(count) => {
                deleted += count;
                if count < PURGE_BATCH as u64 {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "retention failed");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted finished commands past their retention");
        metrics::counter!("cmdbus_purged_total").increment(deleted);
    }
}
