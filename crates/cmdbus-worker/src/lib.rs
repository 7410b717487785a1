//! The worker runtime, as a library: register handlers by command type, then `run` consumes
//! their queues, claims each command with a lease, runs its handler, and finishes it in
//! PostgreSQL before it acks the message.
//!
//! Layout (no piece imports what calls it: `scripts/circles.py`). `runtime.rs` is the loop: it
//! registers the types, keeps the worker's heartbeat row (`presence.rs`, which bounds every
//! lease too, and reads the types an operator paused), consumes the types not paused, and hands each delivery to `delivery.rs` (`Runner`: claim, run the
//! handler, finish, each step in a span of `steps.rs` that joins the trace the command's message
//! carries), which calls `batch.rs` (claims and finishes group-committed, their
//! changes announced), `settle.rs` (ack, requeue, park or delay: the only place that settles,
//! its acks sent by `acks.rs`, which folds those that come together into one `multiple` frame),
//! `lease.rs` (the leases held, renewed by one loop, cancels from the control fanout) and the
//! handler through `handler.rs` (the `Handler` trait and `Registry`) with a `context.rs`
//! (`Context`: what a handler sees), run on `executor.rs`'s runtime (`HandlerRuntime`: handlers
//! apart from the machinery's threads, so none can delay a heartbeat). At the bottom
//! `shared.rs` (`Shared`: pool, broker, lease length, the machinery's runtime), which imports
//! nothing of the crate. `typed.rs` adapts typed handlers (`Registry::register_typed`: payload
//! and result as Rust types, their JSON Schemas registered with the type) to the `Handler`
//! trait. `demo.rs` holds the demo handlers.

mod acks;
mod batch;
mod context;
mod delivery;
pub mod demo;
mod executor;
mod handler;
mod lease;
mod presence;
mod runtime;
mod settle;
mod shared;
mod steps;
mod typed;

pub use context::Context;
pub use handler::{Handler, HandlerError, Registry};
pub use runtime::{WorkerConfig, run};
pub use typed::{TypedHandler, schema_of};
