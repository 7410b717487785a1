//! Healing the change feed: events published while this process had no broker session were
//! never delivered to it. When the feed binds again, the changes it missed are read from
//! PostgreSQL and injected, so that connected clients still see every change.

use cmdbus_bus::ChangeFeed;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows read per query while catching up.
const PAGE: i64 = 1_000;

/// Fills each gap of `feed` from PostgreSQL until `shutdown`.
pub async fn fill_gaps(pool: PgPool, feed: ChangeFeed, shutdown: CancellationToken) {
    let mut rebound = feed.rebound();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = rebound.changed() => if changed.is_err() { return },
        }
        let mut since = feed.high_water();
        if since == 0 {
            continue; // it never carried an event: there is no client state to heal
        }
        loop {
            match cmdbus_store::changed_since(&pool, None, since, None, PAGE).await {
                Ok(rows) => {
                    let full = rows.len() as i64 == PAGE;
                    for row in rows {
                        since = since.max(row.version);
                        match row.event() {
                            Ok(event) => feed.inject(event),
                            Err(error) => tracing::error!(%error, "cannot build event"),
                        }
                    }
                    if !full {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot catch up the change feed");
                    break;
                }
            }
        }
    }
}
