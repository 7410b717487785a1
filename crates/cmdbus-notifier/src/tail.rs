//! PostgreSQL as the source of every push: this loop reads every change committed since the
//! last snapshot it read, publishes each into the change feed (where the events fanout, the
//! low-latency path, may have delivered it already: the feed drops duplicates), then advances
//! the feed's horizon to that snapshot. A change whose event was lost — a process lost its broker
//! connection at the wrong moment, the broker was away, this notifier started after it — still
//! reaches every connected client within one interval.

use cmdbus_bus::ChangeFeed;
use cmdbus_store::Db;
use cmdbus_store::{Cursor, Scope};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most changes read in one pass. Past it, clients are told to reload (`reset`) rather than
/// the notifier buffering without bound.
const TAIL_LIMIT: i64 = 20_000;

/// Follows `commands` every `interval` until `shutdown`.
pub async fn follow_database(
    pool: Db,
    feed: ChangeFeed,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut cursor: Option<Cursor> = None;
    loop {
        match cmdbus_store::changes_after(&pool, cursor.as_ref(), Scope::Everything, TAIL_LIMIT)
            .await
        {
            Ok(changes) => {
                if changes.truncated {
                    tracing::warn!(
                        limit = TAIL_LIMIT,
                        "too many changes at once; clients reload"
                    );
                    metrics::counter!("cmdbus_feed_resets_total").increment(1);
                    feed.reset();
                } else {
                    for row in &changes.rows {
                        match row.event() {
                            Ok(event) => {
                                if feed.publish(event) {
                                    metrics::counter!("cmdbus_feed_changes_from_database_total")
                                        .increment(1);
                                }
                            }
                            // One bad row never stops the others.
                            Err(error) => tracing::error!(%error, "cannot build event; skipped"),
                        }
                    }
                }
                feed.advance(changes.cursor.as_str());
                cursor = Some(changes.cursor);
            }
            Err(error) => tracing::warn!(%error, "cannot read changes; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
