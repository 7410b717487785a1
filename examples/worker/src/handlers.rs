//! The application's handlers, typed: each payload and result is a Rust type, whose JSON Schema
//! the api checks submits against (`422 invalid_payload` with a pointer per error) and
//! publishes in `GET /v1/types` and `/openapi.json`. (The cmdbus tests compile this file too,
//! to run it against a real api: `crates/cmdbus/tests/api/example.rs`.)

use cmdbus::worker::{Context, HandlerError, Registry, TypeInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every handler of this binary.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register_typed(
            info("invoice.total", "Adds up an invoice's lines.", 3),
            invoice_total,
        )
        .register_typed(
            info(
                "text.digest",
                "The SHA-256 of a text, hashed `rounds` times.",
                1,
            ),
            text_digest,
        );
    registry
}

fn info(name: &str, description: &str, max_attempts: i32) -> TypeInfo {
    TypeInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        max_attempts,
        example: None,
        payload_schema: None, // derived from the payload type by `register_typed`
        result_schema: None,
    }
}

/// `invoice.total`'s payload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invoice {
    /// ISO 4217 currency of every line.
    currency: Currency,
    /// At least one line.
    #[schemars(length(min = 1))]
    lines: Vec<Line>,
}

/// The currencies this application bills in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub(crate) enum Currency {
    #[serde(rename = "EUR")]
    Eur,
    #[serde(rename = "USD")]
    Usd,
}

/// One line of an invoice.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    /// How many, at least 1.
    #[schemars(range(min = 1))]
    quantity: u32,
    /// Price of one, in cents.
    unit_cents: u64,
}

/// `invoice.total`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Total {
    currency: Currency,
    total_cents: u64,
}

async fn invoice_total(ctx: Context, invoice: Invoice) -> Result<Total, HandlerError> {
    let mut total: u64 = 0;
    for line in &invoice.lines {
        total = u64::from(line.quantity)
            .checked_mul(line.unit_cents)
            .and_then(|cents| total.checked_add(cents))
            .ok_or_else(|| HandlerError::permanent("overflow", "the total exceeds u64 cents"))?;
    }
    ctx.progress(1.0, Some(format!("{} lines", invoice.lines.len())))
        .await;
    Ok(Total {
        currency: invoice.currency,
        total_cents: total,
    })
}

/// `text.digest`'s payload.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct Text {
    text: String,
    /// Times to hash (1 to 1000, default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    rounds: u32,
}

fn one() -> u32 {
    1
}

/// `text.digest`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Digest256 {
    /// Lowercase hexadecimal.
    pub sha256: String,
}

async fn text_digest(_ctx: Context, text: Text) -> Result<Digest256, HandlerError> {
    let mut digest = Sha256::digest(text.text.as_bytes());
    for _ in 1..text.rounds.clamp(1, 1000) {
        digest = Sha256::digest(digest);
    }
    Ok(Digest256 {
        sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    })
}
