//! The broker topology, declared in one place with every option spelled out. Every declaration
//! is idempotent, so each new connection declares everything again: a broker that lost its
//! definitions gets them back, and a worker never consumes from a queue that does not exist.

use cmdbus_domain::{Lane, MAX_PRIORITY, Names, RETRY_TIERS};
use lapin::{
    Channel, Connection, ErrorKind, ExchangeKind,
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable},
};

use crate::{BusConfig, BusError, QueueType};

/// Header that routes a delayed message to its tier in the headers exchange `<ns>.retry`. Not
/// `x-` prefixed: a headers exchange ignores those when matching, and would route to every tier.
pub const DELAY_HEADER: &str = "cmdbus-delay";

/// Returns to the queue a message of a quorum command queue survives before the broker
/// dead-letters it to the type's exception lane. Set explicitly because brokers disagree: 3.x
/// has no limit and 4.x defaults to 20. A message returns when its worker dies or its channel
/// closes, and each time a worker cannot reach PostgreSQL to claim it (about once a second while
/// the database is away), so 20 would park commands during a database failover of half a minute.
/// PostgreSQL already bounds the runs of a command (`max_attempts` plus the lease losses); this
/// limit only ends a loop that never reaches PostgreSQL at all, and a message it parks is
/// published again by the redelivery sweep.
pub const QUORUM_DELIVERY_LIMIT: u32 = 1_000;

/// Declares the exchanges and delay tiers every role relies on.
pub(crate) async fn declare_core(channel: &Channel, config: &BusConfig) -> Result<(), BusError> {
    let names = &config.names;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let exchanges = [
        // Commands are routed by type: a direct exchange is exactly "routing key = queue".
        (names.commands_exchange(), ExchangeKind::Direct),
        // Every notifier sees every state change.
        (names.events_exchange(), ExchangeKind::Fanout),
        // Cancels reach every worker at once, whichever holds the command.
        (names.control_exchange(), ExchangeKind::Fanout),
        // Delayed messages keep their routing key (the type) and are routed to a tier by
        // header, so that dead-lettering sends them back to `<ns>.commands` under the right key.
        (names.retry_exchange(), ExchangeKind::Headers),
        // Parked failures, routed by `<type>.<lane>`.
        (names.exceptions_exchange(), ExchangeKind::Direct),
    ];
    for (exchange, kind) in exchanges {
        channel
            .exchange_declare(exchange.into(), kind, durable, FieldTable::default())
            .await?;
    }
    for delay in RETRY_TIERS {
        let queue = names.retry_queue(delay);
        let mut arguments = FieldTable::default();
        arguments.insert("x-message-ttl".into(), AMQPValue::LongUInt(delay));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names.commands_exchange().into()),
        );
        if config.queue_type == QueueType::Quorum {
            // Replicated like the command queues, and dead-lettered at least once: a classic
            // tier dead-letters at most once, and a message it drops is only found again by the
            // redelivery sweep, minutes later.
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            arguments.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            // At-least-once dead-lettering requires refusing publishes when full, not dropping.
            arguments.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
        }
        channel
            .queue_declare(queue.as_str().into(), durable_queue(), arguments)
            .await?;
        let mut binding = FieldTable::default();
        binding.insert("x-match".into(), AMQPValue::LongString("all".into()));
        binding.insert(
            DELAY_HEADER.into(),
            AMQPValue::LongString(delay.to_string().into()),
        );
        channel
            .queue_bind(
                queue.as_str().into(),
                names.retry_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                binding,
            )
            .await?;
    }
    Ok(())
}

/// Declares the queues of one command type: its main queue, its two exception lanes, and its
/// ordered partitions. On a channel of its own, which a refused declaration may close.
pub(crate) async fn declare_type(
    connection: &Connection,
    config: &BusConfig,
    kind: &str,
) -> Result<(), BusError> {
    let names = &config.names;
    let mut channel = connection.create_channel().await?;
    // Every queue that holds a command message — main, partitions and both exception lanes —
    // is of the configured type, so that in quorum mode no message of a command lives on one
    // node only.
    let base_arguments = |delivery_limit: bool| {
        let mut arguments = FieldTable::default();
        if config.queue_type == QueueType::Quorum {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            if delivery_limit {
                arguments.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongUInt(QUORUM_DELIVERY_LIMIT),
                );
            }
        }
        arguments
    };
    for partition in 0..config.partitions.max(1) {
        let queue = names.partition_queue(kind, partition);
        let arguments = |delivery_limit| {
            let mut arguments = base_arguments(delivery_limit);
            // One consumer at a time per partition, so its commands run strictly in order; no
            // priorities here, they would let a later command overtake.
            arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(names.exceptions_exchange().into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(routing_key(kind, Lane::Exceptions1).into()),
            );
            arguments
        };
        let binds = [(names.commands_exchange(), partition_key(kind, partition))];
        declare_command_queue(connection, &mut channel, &queue, arguments, &binds).await?;
    }
    for lane in [Lane::Main, Lane::Exceptions1, Lane::Exceptions2] {
        let queue = names.command_queue(kind, lane);
        let arguments = |delivery_limit| {
            let mut arguments = base_arguments(delivery_limit);
            // Classic queues with priorities: a priority-9 command overtakes a backlog of 0s.
            // (Quorum queues of RabbitMQ 3.x have no priorities.)
            if config.queue_type == QueueType::Classic {
                arguments.insert(
                    "x-max-priority".into(),
                    AMQPValue::ShortShortUInt(MAX_PRIORITY),
                );
            }
            // A rejected message is parked in the next lane, atomically with its removal here:
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(names.exceptions_exchange().into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(routing_key(kind, lane.parked_in()).into()),
            );
            arguments
        };
        let routing_key = routing_key(kind, lane);
        let mut binds = vec![(names.commands_exchange(), routing_key.clone())];
        if lane != Lane::Main {
            binds.push((names.exceptions_exchange(), routing_key));
        }
        declare_command_queue(connection, &mut channel, &queue, arguments, &binds).await?;
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declares a command queue with `arguments(true)` and binds it (`binds`: exchange and routing
/// key). A quorum queue that an older cmdbus declared without `x-delivery-limit` is refused by
/// the broker (a queue's arguments never change), and is then kept as it is — declared again
/// with `arguments(false)` on a fresh channel — with a warning that says how to set the limit
/// without recreating it. The declaration does not wait for its answer (see `durable_queue`):
/// a refusal closes the channel, which the bind after it reports.
async fn declare_command_queue(
    connection: &Connection,
    channel: &mut Channel,
    queue: &str,
    arguments: impl Fn(bool) -> FieldTable,
    binds: &[(String, String)],
) -> Result<(), BusError> {
    match declare_and_bind(channel, queue, arguments(true), binds).await {
        Ok(()) => Ok(()),
        Err(error) if declared_without_delivery_limit(&error) => {
            tracing::warn!(
                queue,
                "this quorum queue was declared without a delivery limit and keeps the broker's \
                 default; set it with a policy: rabbitmqctl set_policy <name> '<pattern>' \
                 '{{\"delivery-limit\":{QUORUM_DELIVERY_LIMIT}}}' --apply-to quorum_queues"
            );
            *channel = connection.create_channel().await?;
            declare_and_bind(channel, queue, arguments(false), binds).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn declare_and_bind(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
    binds: &[(String, String)],
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(queue.into(), durable_queue(), arguments)
        .await?;
    for (exchange, routing_key) in binds {
        channel
            .queue_bind(
                queue.into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// The broker refused a declaration because the queue exists without `x-delivery-limit`.
fn declared_without_delivery_limit(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
                && amqp.get_message().as_str().contains("x-delivery-limit")
    )
}

/// The routing key of a type's queue in a lane: `<type>` or `<type>.<lane>`.
pub fn routing_key(kind: &str, lane: Lane) -> String {
    match lane.suffix() {
        None => kind.to_owned(),
        Some(suffix) => format!("{kind}.{suffix}"),
    }
}

/// The routing key of a type's ordered partition: `<type>.p<N>`.
pub fn partition_key(kind: &str, partition: u16) -> String {
    format!("{kind}.p{partition}")
}

/// Durable, and declared without waiting for the broker's answer. The answer carries the
/// queue's message count, which for an existing quorum queue the broker asks of the queue's
/// leader: right after a node that led it hangs (rather than dies), that question waits for the
/// node, and with it the declaration, the channel and the whole new session, while the queue
/// already works under a new leader. Every declaration is followed by a bind on the same channel,
/// which the broker answers after the declaration and which reports a refused one.
fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        nowait: true,
        ..QueueDeclareOptions::default()
    }
}

/// Deletes every exchange and queue of a namespace (tests and teardown).
pub(crate) async fn delete_all(
    channel: &Channel,
    names: &Names,
    kinds: &[String],
    partitions: u16,
) -> Result<(), BusError> {
    for kind in kinds {
        for partition in 0..partitions {
            channel
                .queue_delete(
                    names.partition_queue(kind, partition).into(),
                    QueueDeleteOptions::default(),
                )
                .await?;
        }
        for lane in [Lane::Main, Lane::Exceptions1, Lane::Exceptions2] {
            channel
                .queue_delete(
                    names.command_queue(kind, lane).into(),
                    QueueDeleteOptions::default(),
                )
                .await?;
        }
    }
    for delay in RETRY_TIERS {
        channel
            .queue_delete(
                names.retry_queue(delay).into(),
                QueueDeleteOptions::default(),
            )
            .await?;
    }
    for exchange in [
        names.commands_exchange(),
        names.events_exchange(),
        names.control_exchange(),
        names.retry_exchange(),
        names.exceptions_exchange(),
    ] {
        channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}
