//! The fast path into the feed: the bus's `events` fanout, followed through its own exclusive,
//! auto-delete queue (so nothing piles up while no process listens). Every change it carries is
//! published into the feed; one it loses is healed by the PostgreSQL tail (`tail`).

use cmdbus_bus::{Broker, FanoutEvent};
use cmdbus_domain::Event;
use tokio_util::sync::CancellationToken;

/// Hands every change of the `events` fanout to `publish` until `shutdown`.
pub(crate) async fn listen(broker: Broker, shutdown: CancellationToken, publish: impl Fn(Event)) {
    let exchange = broker.names().events_exchange();
    broker
        .follow_fanout(&exchange, &shutdown, |event| {
            if let FanoutEvent::Message(data) = event {
                match decode_events(data) {
                    Ok(events) => {
                        for event in events {
                            publish(event);
                        }
                    }
                    // PostgreSQL still has the change: the database reader delivers it.
                    Err(error) => tracing::warn!(%error, "undecodable event"),
                }
            }
        })
        .await;
}

/// The changes one events message carries: an `Event` object, or an array of them.
fn decode_events(data: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    if data.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        serde_json::from_slice(data)
    } else {
        serde_json::from_slice(data).map(|event| vec![event])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_events_message_carries_one_change_or_several() {
        let event = |version: i64| {
            serde_json::json!({"tenant": "t", "command": {
                "id": Uuid::now_v7(), "type": "demo.noop", "status": "queue", "version": version,
                "attempt": 0, "max_attempts": 1, "priority": 0, "generation": 0,
                "created_at": "2026-11-22T00:00:00Z"}})
        };
        let one = serde_json::to_vec(&event(1)).unwrap_or_default();
        let many = serde_json::to_vec(&[event(1), event(2)]).unwrap_or_default();
        let decoded = |data: &[u8]| decode_events(data).map(|events| events.len());
        assert_eq!(decoded(&one).ok(), Some(1), "{:?}", decoded(&one));
        assert_eq!(decoded(&many).ok(), Some(2));
        assert!(decode_events(b"[{}]").is_err());
    }
}
