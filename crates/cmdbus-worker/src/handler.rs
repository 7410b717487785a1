//! What application code implements: a handler per command type (async, or blocking with
//! `Registry::register_blocking`), and the registry of them.

use cmdbus_domain::{ErrorInfo, TypeInfo};
use serde_json::Value;
use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use crate::Context;

/// Why a handler failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HandlerError {
    /// Stable snake_case code, shown to clients and usable to select failures for replay.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

impl HandlerError {
    /// A failure that another attempt may not repeat (a timeout, a busy dependency).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that will happen again however often it is tried (bad input).
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// The stored form.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code.clone(),
            message: self.message.clone(),
            retryable: self.retryable,
        }
    }
}

/// Runs commands of one type. Handlers should be idempotent: delivery is at-least-once (only a
/// *successful finish* is at-most-once).
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt. `ctx` gives the attempt number, progress reports, the cancellation
    /// token and an explicit heartbeat.
    fn handle(
        &self,
        ctx: Context,
        payload: Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    fn handle(
        &self,
        ctx: Context,
        payload: Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        self(ctx, payload)
    }
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>;

/// The object-safe form of `Handler`, so handlers of different types share one map.
trait ErasedHandler: Send + Sync {
    fn call(&self, ctx: Context, payload: Value) -> HandlerFuture;
}

struct Erased<H>(Arc<H>);

impl<H: Handler> ErasedHandler for Erased<H> {
    fn call(&self, ctx: Context, payload: Value) -> HandlerFuture {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.handle(ctx, payload).await })
    }
}

/// The handlers a worker runs, by command type.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: BTreeMap<String, (TypeInfo, Arc<dyn ErasedHandler>)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the type `info.name` (replacing an earlier one).
    pub fn register(&mut self, info: TypeInfo, handler: impl Handler) -> &mut Self {
        self.handlers.insert(
            info.name.clone(),
            (info, Arc::new(Erased(Arc::new(handler)))),
        );
        self
    }

    /// Registers a handler that blocks its thread (synchronous I/O, a CPU-bound loop) for the
    /// type `info.name`: each run gets a thread of its own (`tokio::task::spawn_blocking`), so
    /// it holds up neither async handlers nor the worker. It cannot be interrupted: it should
    /// check `ctx.is_cancelled()` between steps (set when the command is cancelled or the lease
    /// is lost) and report with `ctx.blocking_progress`.
    pub fn register_blocking<F>(&mut self, info: TypeInfo, handler: F) -> &mut Self
    where
        F: Fn(Context, Value) -> Result<Value, HandlerError> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.register(info, move |ctx: Context, payload: Value| {
            let handler = Arc::clone(&handler);
            async move {
                match tokio::task::spawn_blocking(move || handler(ctx, payload)).await {
                    Ok(result) => result,
                    Err(error) => Err(HandlerError::permanent(
                        "panicked",
                        format!("handler panicked: {error}"),
                    )),
                }
            }
        })
    }

    /// The registered types.
    pub fn types(&self) -> Vec<TypeInfo> {
        self.handlers
            .values()
            .map(|(info, _)| info.clone())
            .collect()
    }

    /// The registered type names.
    pub fn names(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub(crate) fn call(&self, kind: &str, ctx: Context, payload: Value) -> Option<HandlerFuture> {
        self.handlers
            .get(kind)
            .map(|(_, handler)| handler.call(ctx, payload))
    }
}
