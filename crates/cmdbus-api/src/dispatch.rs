//! Handing recorded commands to the broker: publish `{id, generation}` on the confirm channel,
//! then `new` → `queue` for the messages the broker confirmed. A row whose publish failed stays
//! `new`, and the relay tries again: the row is durable before anything is published.

use cmdbus_bus::{Broker, Outgoing};
use cmdbus_domain::{CommandMessage, Lane, partition_of};
use cmdbus_store::Db;
use cmdbus_store::{CommandRow, StoreError};
use std::time::Duration;
use uuid::Uuid;

/// The message of a row, to its queue: the type's main queue, its ordered partition, or (for a
/// parked failure) the lane it is parked in.
pub(crate) fn outgoing(broker: &Broker, row: &CommandRow) -> Outgoing {
    let lane = match (row.status.as_str(), row.lane.as_deref()) {
        ("fail", Some("exceptions2")) => Lane::Exceptions2,
        ("fail", Some(_)) => Lane::Exceptions1,
        _ => Lane::Main,
    };
    Outgoing {
        kind: row.kind.clone(),
        message: CommandMessage {
            id: row.id,
            generation: row.generation,
        },
        priority: u8::try_from(row.priority).unwrap_or(0),
        ordering_key: row.ordering_key.clone(),
        lane,
        partition: row
            .ordering_key
            .as_deref()
            .map(|key| partition_of(key, broker.partitions())),
    }
}

/// Publishes the message of each row (pipelined, then every confirm awaited) and returns the
/// ids the broker confirmed; the others wait for a sweep.
pub(crate) async fn publish(broker: &Broker, rows: &[CommandRow]) -> Vec<Uuid> {
    let outgoing: Vec<Outgoing> = rows.iter().map(|row| outgoing(broker, row)).collect();
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
pub(crate) async fn dispatch(
    pool: &Db,
    broker: &Broker,
    redeliver_after: Duration,
    rows: Vec<CommandRow>,
) -> Result<Vec<CommandRow>, StoreError> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let confirmed = publish(broker, &rows).await;
    let mut queued = cmdbus_store::mark_queued(pool, &confirmed, redeliver_after).await?;
    announce(broker, &queued).await;
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

/// Publishes the state change of each row, in one events message (best effort: the notifier
/// reads PostgreSQL too).
pub(crate) async fn announce<'a>(broker: &Broker, rows: impl IntoIterator<Item = &'a CommandRow>) {
    let events: Vec<_> = rows
        .into_iter()
        .filter_map(|row| row.event().ok())
        .collect();
    broker.publish_events(&events).await;
}
