//! Settling a delivery once PostgreSQL says how its run ended: ack, requeue, park it in an
//! exception lane, or hold it in a delay tier. Parking and delaying are confirmed publishes
//! followed by an ack, so neither depends on dead-lettering (which RabbitMQ performs at most
//! once). This is the only place that settles, and it runs last; acks go through the
//! channel's `Acks`, which sends those that come together as one frame.

use cmdbus_bus::Outgoing;
use cmdbus_domain::RETRY_TIERS;
use lapin::{message::Delivery, options::BasicNackOptions, types::AMQPValue};

use crate::{acks::Acks, shared::Shared};

/// Header counting how often a message for an unknown command was put back to wait.
pub(crate) const UNKNOWN_TRIES_HEADER: &str = "cmdbus-unknown-tries";

/// What to do with a delivery.
pub(crate) enum Settle {
    Ack,
    Requeue,
    /// Reject without requeue: the queue dead-letters it to the type's next exception lane.
    /// Only for messages that do not decode, which name no command to park.
    DeadLetter,
    /// Publish into the exception lane (confirmed), ack, and record that nothing is owed.
    Park(Outgoing),
    /// Publish into a delay tier (confirmed), then ack; `tries` is written to the
    /// unknown-command header when set.
    Delay {
        delay_ms: u32,
        tries: Option<u32>,
    },
}

/// The delay before retry number `attempt` (1-based): the tiers in turn, then the longest.
pub(crate) fn backoff_tier(attempt: i32) -> u32 {
    let index = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    RETRY_TIERS[index.min(RETRY_TIERS.len() - 1)]
}

/// How often a message for an unknown command has waited already.
pub(crate) fn unknown_tries(delivery: &Delivery) -> u32 {
    let value = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(UNKNOWN_TRIES_HEADER).cloned());
    match value {
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(0),
        _ => 0,
    }
}

/// Settles `delivery` as `settle` says; parking and delaying publish through `shared.broker`.
pub(crate) async fn settle_delivery(
    shared: &Shared,
    acks: &Acks,
    delivery: Delivery,
    settle: Settle,
) {
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    let dead_letter = BasicNackOptions {
        multiple: false,
        requeue: false,
    };
    match settle {
        Settle::Ack => acks.ack(delivery).await,
        Settle::Requeue => nack(acks, delivery, requeue).await,
        Settle::DeadLetter => nack(acks, delivery, dead_letter).await,
        Settle::Park(outgoing) => {
            let broker = &shared.broker;
            match broker.park(&outgoing, outgoing.lane).await {
                Ok(()) => {
                    let id = outgoing.message.id;
                    if let Err(error) =
                        cmdbus_store::redelivered(&shared.pool, &[id], shared.redeliver_after).await
                    {
                        // The sweep parks it once more: a duplicate in the lane, nothing lost.
                        tracing::warn!(%error, %id, "parked, but cannot record it");
                    }
                }
                // The row owes its parking publish; the api's sweep makes it.
                Err(error) => tracing::warn!(%error, "cannot park now; the sweep will"),
            }
            acks.ack(delivery).await
        }
        Settle::Delay { delay_ms, tries } => {
            let headers: Vec<(&str, AMQPValue)> = tries
                .map(|tries| (UNKNOWN_TRIES_HEADER, AMQPValue::LongUInt(tries)))
                .into_iter()
                .collect();
            let delayed = shared
                .broker
                .publish_delayed(
                    delivery.routing_key.as_str(),
                    &delivery.data,
                    delivery.properties.clone(),
                    &headers,
                    delay_ms,
                )
                .await;
            match delayed {
                Ok(()) => acks.ack(delivery).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot delay the message; requeueing it");
                    nack(acks, delivery, requeue).await
                }
            }
        }
    }
}

/// Nacks a delivery on its own, then tells the ledger, so that no `multiple` ack covers it first.
async fn nack(acks: &Acks, delivery: Delivery, options: BasicNackOptions) {
    match delivery.acker.nack(options).await {
        Ok(_) => acks.settled(delivery.delivery_tag),
        // The channel is gone: the broker requeues the message and the claim sorts it out.
        Err(error) => tracing::debug!(%error, "cannot settle delivery"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HandlerError;
    use cmdbus_domain::ErrorInfo;

    #[test]
    fn backoff_walks_the_tiers() {
        assert_eq!(backoff_tier(1), 1_000);
        assert_eq!(backoff_tier(2), 5_000);
        assert_eq!(backoff_tier(99), 600_000);
    }

    #[test]
    fn error_info_keeps_retryability() {
        let info: ErrorInfo = HandlerError::retryable("busy", "try later").info();
        assert!(info.retryable);
    }
}
