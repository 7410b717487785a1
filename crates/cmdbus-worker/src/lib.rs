//! The worker runtime, as a library: register handlers by command type, then `run` consumes
//! their queues, claims each command with a lease, runs its handler, and finishes it in
//! PostgreSQL before it acks the message.
//!
//! Layout (no piece imports what calls it: `scripts/circles.py`). `runtime.rs` is the loop: it
//! registers the types, consumes, and hands each delivery to `delivery.rs` (`Runner`: claim,
//! run the handler, finish), which calls `batch.rs` (claims and finishes group-committed, their
//! changes announced), `settle.rs` (ack, requeue, park or delay: the only place that acks),
//! `lease.rs` (the leases held, renewed by one loop, cancels from the control fanout) and the
//! handler through `handler.rs` (the `Handler` trait and `Registry`) with a `context.rs`
//! (`Context`: what a handler sees). At the bottom `shared.rs` (`Shared`: pool, broker, lease
//! length), which imports nothing of the crate. `demo.rs` holds the demo handlers.

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
