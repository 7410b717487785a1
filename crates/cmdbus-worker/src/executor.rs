//! Where handlers run: a tokio runtime of their own, apart from the one that drives the worker
//! (lease renewal and deadlines, the worker's heartbeat row, claims, finishes, the broker
//! connection, and in `cmdbus all` the api and the notifier). A handler that blocks its thread
//! or spins the CPU can only hold up other handlers, never a heartbeat: the machinery's threads
//! are never lent to a handler. Whatever a handler reaches through its `Context` (progress, the
//! explicit heartbeat) is run back on the machinery's runtime, so that the shared pool's and the
//! broker's connections are never bound to a runtime whose threads a handler may hold.

use std::{future::Future, io, thread::available_parallelism};
use tokio::{runtime::Runtime, task::JoinHandle};

/// The handlers' runtime; shut down (without waiting for stragglers) when dropped.
#[derive(Debug)]
pub(crate) struct HandlerRuntime {
    runtime: Option<Runtime>,
}

impl HandlerRuntime {
    /// A multi-threaded runtime with one thread per core (at least two); `spawn_blocking` work
    /// (`Registry::register_blocking`) goes to its own blocking pool.
    pub(crate) fn start() -> io::Result<Self> {
        let threads = available_parallelism().map_or(2, |n| n.get()).max(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("cmdbus-handler")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs a handler's future on the handlers' runtime.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => runtime.spawn(future),
            // Only `drop` takes the runtime, and nothing spawns after that.
            None => tokio::spawn(future),
        }
    }
}

impl Drop for HandlerRuntime {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block (and panic); nothing is left to wait
        // for here, the worker has drained (or given up on) every handler.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
