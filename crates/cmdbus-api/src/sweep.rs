//! Background sweeps of the api role, which keep every row moving whatever was lost on the way:
//! the lease reaper (runs whose worker died or paused), the outbox relay (rows the broker never
//! confirmed), redelivery (`queue` rows whose message is overdue, `fail` rows whose parking
//! publish is owed) and retention. Rows are taken with a short publish lease, so several api
//! processes sweep side by side without publishing the same row twice.

use cmdbus_bus::Broker;
use cmdbus_store::{CommandRow, Db};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{dispatch, publish};

/// How long a row taken for publishing is left to the sweeper that took it.
const PUBLISH_LEASE: Duration = Duration::from_secs(10);
/// Rows published per sweep and kind.
const BATCH: i64 = 500;
/// Finished commands deleted per statement, and statements per retention pass.
const PURGE_BATCH: i64 = 1_000;
const PURGE_BATCHES: usize = 20;
/// How often retention runs.
const PURGE_EVERY: Duration = Duration::from_secs(60);

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
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        reap(&config, &pool, &broker).await;
        if broker.is_connected() {
            relay(&config, &pool, &broker).await;
            redeliver(&config, &pool, &broker).await;
        }
        if let Some(retention) = config.retention
            && purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY)
        {
            purged_at = Some(Instant::now());
            purge(&pool, retention).await;
        }
    }
}

async fn reap(config: &SweepConfig, pool: &Db, broker: &Broker) {
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
    let rows = match cmdbus_store::take_redeliveries(pool, PUBLISH_LEASE, BATCH).await {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "redelivery failed");
            return;
        }
    };
    tracing::info!(count = rows.len(), "publishing overdue messages again");
    metrics::counter!("cmdbus_redelivered_total").increment(rows.len() as u64);
    let confirmed = publish(broker, &rows).await;
    // Unconfirmed ones are taken again once their publish lease ends.
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
