//! Handing recorded commands to the broker: publish `{id, generation}` on the confirm channel,
//! then `new` → `queue` for the messages the broker confirmed. A row whose publish failed stays
//! `new`, and the relay tries again: the row is durable before anything is published.

use cmdbus_bus::{Broker, Outgoing};
use cmdbus_store::{CommandRow, Db, StoreError};
use std::time::Duration;
use uuid::Uuid;

/// Publishes the message of each row (pipelined, then every confirm awaited) and returns the
/// ids the broker confirmed; the others wait for a sweep.
pub(crate) async fn publish(broker: &Broker, rows: &[CommandRow]) -> Vec<Uuid> {
    let outgoing: Vec<Outgoing> = rows
        .iter()
        .map(|row| broker.outgoing(row.routing()))
        .collect();
    let results = broker.publish_commands(&outgoing).await;
    let confirmed: Vec<_> = rows
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .map(|(row, _)| row.id)
        .collect();
    metrics::counter!("cmdbus_publish_confirmed_total").increment(confirmed.len() as u64);
    metrics::counter!("cmdbus_publish_failed_total")
        .increment((rows.len() - confirmed.len()) as u64);
    if let Some(Err(error)) = results.iter().find(|result| result.is_err()) {
        tracing::warn!(%error, failed = rows.len() - confirmed.len(), "not published; a sweep will retry");
    }
    confirmed
}

/// Publishes `rows` (all `new`) and returns them as they are afterwards, in the same order.
/// A command whose key is not its turn is not published at all: it becomes `queue` held in
/// PostgreSQL, and the finish of its predecessor publishes it (`cmdbus_store::hold_new`).
pub(crate) async fn dispatch(
    pool: &Db,
    broker: &Broker,
    redeliver_after: Duration,
    rows: Vec<CommandRow>,
) -> Result<Vec<CommandRow>, StoreError> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let keyed: Vec<Uuid> = rows
        .iter()
        .filter(|row| row.ordering_key.is_some())
        .map(|row| row.id)
        .collect();
    let mut queued = if keyed.is_empty() {
        Vec::new()
    } else {
        match cmdbus_store::hold_new(pool, &keyed).await {
            Ok(held) => held,
            Err(error) => {
                // Published all the same: a worker holds the ones that are not their turn.
                tracing::warn!(%error, "cannot hold commands for their key");
                Vec::new()
            }
        }
    };
    metrics::counter!("cmdbus_held_total").increment(queued.len() as u64);
    let unheld: Vec<CommandRow> = rows
        .iter()
        .filter(|row| !queued.iter().any(|held| held.id == row.id))
        .cloned()
        .collect();
    let confirmed = publish(broker, &unheld).await;
    queued.extend(cmdbus_store::mark_queued(pool, &confirmed, redeliver_after).await?);
    // Held and published alike, in one events message.
    broker.announce(queued.iter().map(CommandRow::event)).await;
    // A confirmed row that was not `new` any more moved on already (a fast worker claimed it
    // before the confirm came back): answer with what it is now, not with a stale `new`.
    let moved_on: Vec<Uuid> = confirmed
        .into_iter()
        .filter(|id| !queued.iter().any(|row| row.id == *id))
        .collect();
    if !moved_on.is_empty() {
        queued.extend(cmdbus_store::lookup_many(pool, &moved_on).await?);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            queued
                .iter()
                .find(|q| q.id == row.id)
                .cloned()
                .unwrap_or(row)
        })
        .collect())
}
