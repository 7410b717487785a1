//! Settling a delivery once its attempt is over: ack, requeue, park in the next exception lane,
//! or hold it in a delay tier. This is the only place that acks, and it runs last.

use cmdbus_bus::Outgoing;
use cmdbus_domain::{CommandMessage, Lane, RETRY_TIERS};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
};

use crate::runtime::Runtime;

/// What to do with a delivery once the database says how its attempt ended.
pub(crate) enum Settle {
    Ack,
    Requeue,
    /// Reject without requeue: the queue dead-letters it to the type's next exception lane.
    Park,
    /// Publish into a delay tier, then ack.
    Delay(u32),
}

/// The shortest delay tier that is at least `ms` long (the longest if none is).
pub(crate) fn tier_at_least(ms: u64) -> u32 {
    RETRY_TIERS
        .into_iter()
        .find(|tier| u64::from(*tier) >= ms)
        .unwrap_or(RETRY_TIERS[RETRY_TIERS.len() - 1])
}

/// The delay before retry number `attempt` (1-based): the tiers in turn, then the longest.
pub(crate) fn backoff_tier(attempt: i32) -> u32 {
    let index = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    RETRY_TIERS[index.min(RETRY_TIERS.len() - 1)]
}

pub(crate) async fn settle_delivery(runtime: &Runtime, delivery: Delivery, settle: Settle) {
    let result = match settle {
        Settle::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
        Settle::Requeue => {
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            delivery.acker.nack(requeue).await
        }
        Settle::Park => {
            let park = BasicNackOptions {
                multiple: false,
                requeue: false,
            };
            delivery.acker.nack(park).await
        }
        Settle::Delay(delay_ms) => {
            let republished = match serde_json::from_slice::<CommandMessage>(&delivery.data) {
                Ok(message) => {
                    let outgoing = Outgoing {
                        kind: delivery.properties.kind().as_ref().map_or_else(
                            || strip_lane(delivery.routing_key.as_str()),
                            |kind| kind.to_string(),
                        ),
                        message,
                        priority: delivery.properties.priority().unwrap_or(0),
                        ordering_key: None,
                        lane: runtime.lane,
                        partition: None,
                    };
                    runtime
                        .shared
                        .broker
                        .publish_delayed(&outgoing, delay_ms)
                        .await
                }
                Err(error) => Err(error.into()),
            };
            match republished {
                Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot delay the message; requeueing it");
                    let requeue = BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    };
                    delivery.acker.nack(requeue).await
                }
            }
        }
    };
    if let Err(error) = result {
        // The channel is gone: the broker requeues the message and the claim sorts it out.
        tracing::debug!(%error, "cannot settle delivery");
    }
}

/// `demo.echo.exceptions1` → `demo.echo`.
fn strip_lane(routing_key: &str) -> String {
    [Lane::Exceptions1, Lane::Exceptions2]
        .into_iter()
        .filter_map(Lane::suffix)
        .find_map(|suffix| routing_key.strip_suffix(suffix)?.strip_suffix('.'))
        .unwrap_or(routing_key)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HandlerError;
    use cmdbus_domain::ErrorInfo;

    #[test]
    fn tiers_cover_remaining_leases() {
        assert_eq!(tier_at_least(0), 1_000);
        assert_eq!(tier_at_least(1_000), 1_000);
        assert_eq!(tier_at_least(1_001), 5_000);
        assert_eq!(tier_at_least(10_000_000), 600_000);
        assert_eq!(backoff_tier(1), 1_000);
        assert_eq!(backoff_tier(2), 5_000);
        assert_eq!(backoff_tier(99), 600_000);
        assert_eq!(strip_lane("demo.echo.exceptions1"), "demo.echo");
        assert_eq!(strip_lane("demo.echo"), "demo.echo");
    }

    #[test]
    fn error_info_keeps_retryability() {
        let info: ErrorInfo = HandlerError::retryable("busy", "try later").info();
        assert!(info.retryable);
    }
}
