//! The worker's heartbeat row: written every fifth of `dead_after` from the machinery's runtime
//! (no handler can delay it), marked `stopping` while the worker drains and deleted once it has.
//! The api releases the runs of a worker whose row is older than its `dead_after`; each
//! successful write tells the leases (`Inflight::seen`) how long they may last without another,
//! so a worker cut off from PostgreSQL stops its handlers before its runs can be released.
//! With each beat the worker reads the paused types (`Paused`): an operator's pause reaches
//! every worker process within one beat, and the consume loop stops consuming them.

use cmdbus_store::{Db, WorkerBeat};
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::lease::Inflight;

/// The types paused by an operator, as last read; the consume loop watches it.
pub(crate) type Paused = watch::Sender<BTreeSet<String>>;

/// Writes the row now, then reads the paused types into `paused`; true when the row was
/// written.
pub(crate) async fn beat(
    pool: &Db,
    beat: &WorkerBeat,
    inflight: &Inflight,
    paused: &Paused,
) -> bool {
    let interval = interval(beat.dead_after);
    let sent = Instant::now();
    // Bounded, so that a database that does not answer cannot hold the next beat back.
    match tokio::time::timeout(interval, cmdbus_store::worker_seen(pool, beat)).await {
        Ok(Ok(())) => {
            inflight.seen(sent, beat.dead_after);
            read_paused(pool, interval, paused).await;
            true
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot write the worker's heartbeat row");
            false
        }
        Err(_) => {
            tracing::warn!("writing the worker's heartbeat row timed out");
            false
        }
    }
}

/// Reads the paused types; a failed read keeps the last known set (a pause is never lifted, nor
/// one invented, by a database that does not answer).
async fn read_paused(pool: &Db, within: Duration, paused: &Paused) {
    match tokio::time::timeout(within, cmdbus_store::paused_types(pool)).await {
        Ok(Ok(names)) => {
            let names: BTreeSet<String> = names.into_iter().collect();
            // Only a change wakes the consume loop.
            paused.send_if_modified(|known| {
                let changed = *known != names;
                if changed {
                    *known = names;
                }
                changed
            });
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot read the paused types"),
        Err(_) => tracing::warn!("reading the paused types timed out"),
    }
}

fn interval(dead_after: Duration) -> Duration {
    (dead_after / 5).max(Duration::from_millis(50))
}

/// Writes the row every fifth of `dead_after` until `stop`; `draining` marks it `stopping`.
pub(crate) async fn beat_loop(
    pool: Db,
    mut row: WorkerBeat,
    inflight: Arc<Inflight>,
    paused: Arc<Paused>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    let mut next = Instant::now();
    loop {
        next += interval(row.dead_after);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = draining.cancelled(), if !row.stopping => {
                row.stopping = true; // said at once
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        beat(&pool, &row, &inflight, &paused).await;
        // After a pause (SIGSTOP) the beats missed are not made up in a burst.
        next = next.max(Instant::now());
    }
}

/// Removes the row once the worker has drained: it holds nothing any more.
pub(crate) async fn gone(pool: &Db, id: &str) {
    if let Err(error) = cmdbus_store::worker_gone(pool, id).await {
        // Forgotten by the api's sweep later; its runs are all finished or given back.
        tracing::warn!(%error, "cannot remove the worker's heartbeat row");
    }
}
