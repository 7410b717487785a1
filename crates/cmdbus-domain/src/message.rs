//! What travels through RabbitMQ. A command message carries only identity: the payload lives in
//! PostgreSQL and the claim returns it, so the broker never holds the only copy of a fact.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CommandView;

/// The body of a message on a command queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// The command's id (also the AMQP `message_id`).
    pub id: Uuid,
    /// Bumped by every replay; a message of an older generation claims nothing.
    pub generation: i32,
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
}
