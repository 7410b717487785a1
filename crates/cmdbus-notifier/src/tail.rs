//! PostgreSQL as the source of every push: this loop reads which commands changed since the
//! last snapshot it read, publishes into the change feed every change the feed has not seen (the
//! events fanout, the low-latency path, normally delivered it already), then advances the feed's
//! horizon to that snapshot. A change whose event was lost — a process lost its broker connection
//! at the wrong moment, the broker was away, this notifier started after it — still reaches every
//! connected client within one interval.
//!
//! A pass reads ids and versions only; whole rows are read (a page at a time) just for the
//! changes the fast path missed. A row read after the snapshot may hold a later state of its
//! command: publishing that is sound, since clients keep the highest version they are sent.

use cmdbus_bus::ChangeFeed;
use cmdbus_store::Db;
use cmdbus_store::{Cursor, Scope};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most changes read in one pass. Past it, clients are told to reload (`reset`) rather than
/// the notifier buffering without bound.
const TAIL_LIMIT: i64 = 20_000;

/// Whole rows read at once for the changes the fast path missed.
const PAGE: usize = 256;

/// Follows `commands` every `interval` until `shutdown`.
pub async fn follow_database(
    pool: Db,
    feed: ChangeFeed,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut cursor: Option<Cursor> = None;
    loop {
        match pass(&pool, &feed, cursor.as_ref()).await {
            Ok(read) => {
                feed.advance(read.as_str());
                cursor = Some(read);
            }
            Err(error) => tracing::warn!(%error, "cannot read changes; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Publishes every change since `since` that the feed has not seen; returns the snapshot read,
/// the horizon once it is published. The first pass (no `since`) only takes a snapshot.
async fn pass(
    pool: &Db,
    feed: &ChangeFeed,
    since: Option<&Cursor>,
) -> Result<Cursor, cmdbus_store::StoreError> {
    let Some(since) = since else {
        return Ok(
            cmdbus_store::changes_after(pool, None, Scope::Everything, 0)
                .await?
                .cursor,
        );
    };
    let changed =
        cmdbus_store::changed_ids_after(pool, since, Scope::Everything, TAIL_LIMIT).await?;
    if changed.truncated {
        tracing::warn!(
            limit = TAIL_LIMIT,
            "too many changes at once; clients reload"
        );
        metrics::counter!("cmdbus_feed_resets_total").increment(1);
        feed.reset();
        return Ok(changed.cursor);
    }
    let missed: Vec<Uuid> = changed
        .ids
        .iter()
        .zip(&changed.versions)
        .filter(|&(&id, &version)| !feed.published(id, version))
        .map(|(&id, _)| id)
        .collect();
    // Read every page before publishing any: a pass reaches the subscribers at once, as it
    // was committed, and one that cannot take it all is told it lagged.
    let mut rows = Vec::with_capacity(missed.len());
    for page in missed.chunks(PAGE) {
        rows.extend(cmdbus_store::lookup_many(pool, page).await?);
    }
    for row in rows {
        if feed.publish(row.event()) {
            metrics::counter!("cmdbus_feed_changes_from_database_total").increment(1);
        }
    }
    Ok(changed.cursor)
}
