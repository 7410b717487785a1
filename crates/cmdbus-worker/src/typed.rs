//! Typed handlers: a handler that takes its payload as a Rust type and returns a Rust type
//! (`Registry::register_typed`). The payload is deserialized before the handler runs, and the
//! JSON Schemas of both types, derived with `schemars`, are registered with the type: the api
//! refuses a payload the schema does not accept before it is ever queued (`422
//! invalid_payload`), and `GET /v1/types` and `/openapi.json` publish them.

use cmdbus_domain::TypeInfo;
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use std::{future::Future, marker::PhantomData, sync::Arc};

use crate::{Context, Handler, HandlerError, Registry};

/// What a typed handler is: an async function of the context and the payload `P` that answers
/// a result `R`. Implemented for every `Fn(Context, P) -> impl Future<Output = Result<R, _>>`.
pub trait TypedHandler<P, R>: Send + Sync + 'static {
    /// Runs one attempt with the deserialized payload.
    fn handle(
        &self,
        ctx: Context,
        payload: P,
    ) -> impl Future<Output = Result<R, HandlerError>> + Send;
}

impl<F, Fut, P, R> TypedHandler<P, R> for F
where
    F: Fn(Context, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    fn handle(
        &self,
        ctx: Context,
        payload: P,
    ) -> impl Future<Output = Result<R, HandlerError>> + Send {
        self(ctx, payload)
    }
}

/// A typed handler seen as an untyped one: JSON in, JSON out.
struct Typed<P, R, H> {
    handler: Arc<H>,
    types: PhantomData<fn(P) -> R>,
}

impl<P, R, H> Handler for Typed<P, R, H>
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: TypedHandler<P, R>,
{
    fn handle(
        &self,
        ctx: Context,
        payload: Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        let handler = Arc::clone(&self.handler);
        async move {
            let payload = decode::<P>(payload)?;
            encode(handler.handle(ctx, payload).await?)
        }
    }
}

/// The payload as `P`. A payload that does not deserialize fails for good: another attempt
/// would read the same bytes. (The api checks payloads against the schema first; this catches
/// what a schema cannot say, and commands submitted before the type had a schema.)
fn decode<P: DeserializeOwned>(payload: Value) -> Result<P, HandlerError> {
    serde_json::from_value(payload)
        .map_err(|error| HandlerError::permanent("invalid_payload", error.to_string()))
}

/// The result as stored. One that does not serialize (a map with non-string keys) fails for good.
fn encode<R: Serialize>(result: R) -> Result<Value, HandlerError> {
    serde_json::to_value(result)
        .map_err(|error| HandlerError::permanent("invalid_result", error.to_string()))
}

/// The JSON Schema (2020-12) of `T`, with its subschemas under `$defs`.
pub fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

impl Registry {
    /// Registers a typed handler for the type `info.name`: its payload is deserialized into `P`
    /// before it runs (a payload that does not deserialize fails the command permanently with
    /// code `invalid_payload` and serde's message), and its `R` is stored as the result. The
    /// JSON Schemas of `P` and `R` replace `info`'s `payload_schema` and `result_schema`.
    ///
    /// ```ignore
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Add { a: i64, b: i64 }
    /// registry.register_typed(info, |_ctx: Context, add: Add| async move { Ok(add.a + add.b) });
    /// ```
    pub fn register_typed<P, R, H>(&mut self, mut info: TypeInfo, handler: H) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + JsonSchema + Send + 'static,
        H: TypedHandler<P, R>,
    {
        info.payload_schema = Some(schema_of::<P>());
        info.result_schema = Some(schema_of::<R>());
        self.register(
            info,
            Typed {
                handler: Arc::new(handler),
                types: PhantomData,
            },
        )
    }

    /// `register_typed` for a handler that blocks its thread (see `register_blocking`): the
    /// payload is deserialized, and the result serialized, on the run's own thread too.
    pub fn register_typed_blocking<P, R, F>(&mut self, mut info: TypeInfo, handler: F) -> &mut Self
    where
        P: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + JsonSchema + 'static,
        F: Fn(Context, P) -> Result<R, HandlerError> + Send + Sync + 'static,
    {
        info.payload_schema = Some(schema_of::<P>());
        info.result_schema = Some(schema_of::<R>());
        self.register_blocking(info, move |ctx: Context, payload: Value| {
            encode(handler(ctx, decode::<P>(payload)?)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema)]
    struct Transfer {
        amount: u32,
        to: Account,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    struct Account {
        iban: String,
    }

    #[test]
    fn a_payload_that_does_not_deserialize_fails_for_good_with_serdes_reason() {
        let error = decode::<Transfer>(json!({"amount": -1, "to": {"iban": "x"}}))
            .expect_err("negative amount");
        assert_eq!(error.code, "invalid_payload");
        assert!(!error.retryable);
        assert!(error.message.contains("-1"), "{}", error.message);
        let ok = decode::<Transfer>(json!({"amount": 5, "to": {"iban": "DE00"}}));
        assert!(ok.is_ok_and(|t| t.amount == 5 && t.to.iban == "DE00"));
    }

    #[test]
    fn the_schemas_come_from_the_types() {
        let schema = schema_of::<Transfer>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["amount", "to"]));
        assert_eq!(schema["properties"]["to"]["$ref"], "#/$defs/Account");
        assert_eq!(schema["$defs"]["Account"]["required"], json!(["iban"]));
    }
}
