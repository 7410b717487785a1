//! The contract of cmdbus, free of I/O: command states, the command view that the api, the
//! notifier and the web UI show, the messages that travel through RabbitMQ, and the names of
//! every exchange and queue.
//!
//! Layout. `command.rs`: `Status` (and who moves each state on), `CommandView`, `ErrorInfo`,
//! `TypeInfo`, and how clients write command ids (`parse_id`, `parse_id_list`). `message.rs`: what travels through RabbitMQ (`CommandMessage`, `Control`,
//! `Event`) and `Routing`, the facts of a row the bus routes its message by. `names.rs`: the
//! `Lane`s and every exchange and queue name of a namespace. `problem.rs`: the problem+json
//! error body. `runs.rs`: an attempt of the history and a worker process, as listed. `trace.rs`:
//! the W3C `traceparent` a command carries across processes, and `SpanLinks`, which joins
//! `tracing` spans to it when the binary exports spans. Every
//! other crate depends on this one; it depends on none of them.

mod command;
mod message;
mod names;
mod problem;
mod runs;
pub mod trace;

pub use command::{CommandView, ErrorInfo, Status, TypeInfo, parse_id, parse_id_list};
pub use message::{CommandMessage, Control, Event, Routing};
pub use names::{Lane, Names, RETRY_TIERS, UnknownLane, partition_of};
pub use problem::{FieldError, PROBLEM_JSON, Problem};
pub use runs::{AttemptView, WorkerView};
pub use trace::TraceParent;

/// The tenant used until tenants and API keys exist.
pub const DEFAULT_TENANT: &str = "default";

/// Highest priority a command may carry: the api's bound on `priority`, and the AMQP
/// `x-max-priority` of the classic command queues (0..=9).
pub const MAX_PRIORITY: u8 = 9;
