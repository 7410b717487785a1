//! The built-in demo handlers: enough to try every state of the lifecycle from a browser.

use cmdbus_domain::TypeInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

use crate::{Context, HandlerError, Registry};

/// Registers `demo.echo`, `demo.sleep`, `demo.fail`, `demo.noop` and the typed `demo.add`.
pub fn register(registry: &mut Registry) {
    registry
        .register(
            info("demo.echo", "Returns its payload as the result.", 1, json!({"hello": "world"})),
            |_ctx: Context, payload: Value| async move { Ok(payload) },
        )
        .register(
            info(
                "demo.sleep",
                "Sleeps `ms` milliseconds in `steps` steps, reporting progress after each; \
                 `ignore_cancel: true` keeps sleeping when cancelled, as many real handlers do.",
                1,
                json!({"ms": 3000, "steps": 5}),
            ),
            sleep,
        )
        .register(
            info(
                "demo.fail",
                "Fails its first `times` attempts with a retryable error; `permanent: true` fails for good.",
                3,
                json!({"times": 1}),
            ),
            fail,
        )
        .register(
            info("demo.noop", "Does nothing, as fast as possible.", 1, json!({})),
            |_ctx: Context, _payload: Value| async move { Ok(Value::Null) },
        )
        .register_typed(
            info(
                "demo.add",
                "Adds `a` and `b` (integers): a typed handler, whose payload is checked against \
                 its JSON Schema at submit.",
                1,
                json!({"a": 2, "b": 3}),
            ),
            add,
        );
}

/// `demo.add`'s payload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Addends {
    /// The first addend.
    a: i64,
    /// The second addend.
    b: i64,
}

/// `demo.add`'s result.
#[derive(Debug, Serialize, JsonSchema)]
struct Sum {
    /// `a + b`.
    sum: i64,
}

async fn add(_ctx: Context, Addends { a, b }: Addends) -> Result<Sum, HandlerError> {
    a.checked_add(b)
        .map(|sum| Sum { sum })
        .ok_or_else(|| HandlerError::permanent("overflow", "a + b does not fit in 64 bits"))
}

fn info(name: &str, description: &str, max_attempts: i32, example: Value) -> TypeInfo {
    TypeInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        max_attempts,
        example: Some(example),
        payload_schema: None,
        result_schema: None,
    }
}

fn field(payload: &Value, name: &str, default: u64) -> Result<u64, HandlerError> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| {
            HandlerError::permanent(
                "invalid_payload",
                format!("`{name}` must be a non-negative integer"),
            )
        }),
    }
}

async fn sleep(ctx: Context, payload: Value) -> Result<Value, HandlerError> {
    let ms = field(&payload, "ms", 1000)?;
    let steps = field(&payload, "steps", 1)?.clamp(1, 10_000);
    let ignore_cancel = payload.get("ignore_cancel").and_then(Value::as_bool) == Some(true);
    let step = Duration::from_millis(ms / steps);
    for done in 1..=steps {
        tokio::select! {
            _ = ctx.cancellation().cancelled(), if !ignore_cancel => {
                return Err(HandlerError::retryable("cancelled", "stopped before the end"));
            }
            _ = tokio::time::sleep(step) => {}
        }
        let fraction = done as f32 / steps as f32;
        ctx.progress(fraction, Some(format!("step {done}/{steps}")))
            .await;
    }
    Ok(json!({"slept_ms": ms, "steps": steps}))
}

async fn fail(ctx: Context, payload: Value) -> Result<Value, HandlerError> {
    if payload.get("permanent").and_then(Value::as_bool) == Some(true) {
        return Err(HandlerError::permanent(
            "demo_permanent",
            "failed on purpose, for good",
        ));
    }
    let times = field(&payload, "times", 1)?;
    if u64::try_from(ctx.attempt()).unwrap_or(0) <= times {
        return Err(HandlerError::retryable(
            "demo_failure",
            format!(
                "failed on purpose (attempt {} of {times} to fail)",
                ctx.attempt()
            ),
        ));
    }
    Ok(json!({"attempts": ctx.attempt()}))
}
