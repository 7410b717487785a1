//! What travels through RabbitMQ. A command message carries only identity: the payload lives in
//! PostgreSQL and the claim returns it, so the broker never holds the only copy of a fact.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CommandView, Lane, TraceParent};

/// The body of a message on a command queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// The command's id (also the AMQP `message_id`).
    pub id: Uuid,
    /// Bumped by every replay; a message of an older generation claims nothing.
    pub generation: i32,
}

/// A command's message and where it goes, as its row says: what the store hands the bus, which
/// adds the broker's own routing (the partition) and publishes it. The one builder of a row's
/// message is the store's `CommandRow::routing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Command type: the routing key.
    pub kind: String,
    /// Id and generation.
    pub message: CommandMessage,
    /// AMQP priority, 0..=[`crate::MAX_PRIORITY`].
    pub priority: u8,
    /// Carried as a header; a command with one goes to its key's ordered partition.
    pub ordering_key: Option<String>,
    /// Which queue of the type: the main one, or the exception lane a failure is parked in.
    pub lane: Lane,
    /// The command's trace context (`trace.rs`), carried as the `traceparent` header.
    pub traceparent: Option<TraceParent>,
}

/// A message on the `control` fanout, seen by every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Control {
    /// Stop the handler of this command now, if it runs here.
    Cancel {
        /// The command.
        id: Uuid,
        /// The generation whose run must stop: a replay's run is never stopped by a cancel of
        /// the generation before it.
        generation: i32,
    },
}

/// A state change on the `events` fanout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Whose command it is: the notifier only shows a tenant its own commands.
    pub tenant: String,
    /// The command as it is after the change.
    pub command: CommandView,
    /// The command's trace context, which a push of the change joins (absent from events of
    /// older versions, and of commands recorded before trace contexts were).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "traceparent_text"
    )]
    pub traceparent: Option<TraceParent>,
}

/// An event's `traceparent` as the header's text; one that does not read is dropped, never
/// the event.
mod traceparent_text {
    use crate::TraceParent;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<TraceParent>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(parent) => serializer.collect_str(parent),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<TraceParent>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        Ok(text.as_deref().and_then(TraceParent::parse))
    }
}
