//! Background sweeps of the api role. The relay publishes rows the broker never confirmed (the
//! api crashed, or the broker was down, between insert and confirm); the reaper returns running
//! rows whose worker died to `new`, so that the relay path runs them again.

use cmdbus_bus::Broker;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{announce, dispatch};

/// Sweep settings.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// How often both sweeps run.
    pub interval: Duration,
    /// A `new` row younger than this is still being published by its request.
    pub relay_after: Duration,
    /// A lease expired this long ago means its worker is gone.
    pub reap_after: Duration,
}

/// Runs both sweeps until `shutdown`.
pub async fn run_sweeps(
    config: SweepConfig,
    pool: PgPool,
    broker: Broker,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        match cmdbus_store::reap_expired(&pool, config.reap_after, None).await {
            Ok(rows) if !rows.is_empty() => {
                tracing::warn!(count = rows.len(), "reaped commands of dead workers");
                metrics::counter!("cmdbus_reaped_total").increment(rows.len() as u64);
                announce(&broker, &rows).await;
                let unsent = rows.into_iter().filter(|row| row.status == "new").collect();
                if let Err(error) = dispatch(&pool, &broker, unsent).await {
                    tracing::warn!(%error, "cannot dispatch reaped commands");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reaper failed"),
        }
        if !broker.is_connected() {
            continue; // nothing can be published; the rows wait safely as `new`
        }
        match cmdbus_store::relay_candidates(&pool, config.relay_after, 500).await {
            Ok(rows) if !rows.is_empty() => {
                tracing::info!(count = rows.len(), "relaying unpublished commands");
                metrics::counter!("cmdbus_relayed_total").increment(rows.len() as u64);
                if let Err(error) = dispatch(&pool, &broker, rows).await {
                    tracing::warn!(%error, "relay failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "relay failed"),
        }
    }
}
