//! The worker runtime, as a library: register handlers by command type, then `run` consumes
//! their queues, claims each command with a lease, runs its handler, and finishes it in
//! PostgreSQL before it acks the message.

mod batch;
mod context;
mod delivery;
pub mod demo;
mod handler;
mod lease;
mod runtime;
mod settle;
mod shared;

pub use context::Context;
pub use handler::{Handler, HandlerError, Registry};
pub use runtime::{WorkerConfig, run};
