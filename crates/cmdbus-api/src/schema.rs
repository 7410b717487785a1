//! Payloads checked against their type's JSON Schema (`command_types.payload_schema`, derived
//! from a typed handler's payload type): each schema is compiled once into a validator, kept
//! with the catalogue (`types.rs`) and compiled again only when the schema changes. A payload
//! it refuses is answered `422 invalid_payload` with a JSON Pointer and a reason per error.

use cmdbus_domain::FieldError;
use jsonschema::{Validator, error::ValidationErrorKind};
use serde_json::Value;
use std::sync::Arc;

use crate::ApiError;

/// Most errors one answer lists: enough to fix a form, bounded for a payload that is all wrong.
const MAX_ERRORS: usize = 20;

/// Longest reason, in characters: a reason may quote the value, which may be large.
const MAX_REASON: usize = 200;

/// A type's schema and its compiled validator.
#[derive(Debug, Clone)]
pub(crate) struct PayloadSchema {
    /// The schema as registered, to tell when it changed.
    pub(crate) schema: Value,
    validator: Arc<Validator>,
}

impl PayloadSchema {
    /// Compiles `schema`, reusing `previous` when it is the same schema. A schema that does
    /// not compile (a worker registered something that is not JSON Schema) checks nothing: it
    /// is logged, and the handler still sees every payload, as before schemas were checked.
    /// Remote references are never fetched (the crate is built without resolvers).
    pub(crate) fn compile(name: &str, schema: &Value, previous: Option<&Self>) -> Option<Self> {
        if let Some(previous) = previous.filter(|previous| &previous.schema == schema) {
            return Some(previous.clone());
        }
        match jsonschema::validator_for(schema) {
            Ok(validator) => Some(Self {
                schema: schema.clone(),
                validator: Arc::new(validator),
            }),
            Err(error) => {
                tracing::warn!(%error, r#type = name, "payload schema does not compile; not checked");
                None
            }
        }
    }

    /// The payload's errors, each pointed at from the request body: `prefix` is where the
    /// payload sits in it (`/payload`).
    pub(crate) fn errors(&self, payload: &Value, prefix: &str) -> Vec<FieldError> {
        self.validator
            .iter_errors(payload)
            .take(MAX_ERRORS)
            .map(|error| {
                let mut pointer = format!("{prefix}{}", error.instance_path());
                // A missing property is pointed at where it should be, not at its object.
                if let ValidationErrorKind::Required {
                    property: Value::String(property),
                } = error.kind()
                {
                    pointer.push('/');
                    pointer.push_str(&property.replace('~', "~0").replace('/', "~1"));
                }
                FieldError {
                    pointer,
                    reason: shorten(error.to_string()),
                }
            })
            .collect()
    }

    /// `Err(invalid_payload)` when the schema refuses the payload of a submit.
    pub(crate) fn check(&self, payload: &Value) -> Result<(), ApiError> {
        let errors = self.errors(payload, "/payload");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidPayload(errors))
        }
    }
}

fn shorten(mut reason: String) -> String {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON) {
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn transfer() -> PayloadSchema {
        let schema = json!({
            "type": "object",
            "required": ["amount", "to"],
            "properties": {
                "amount": {"type": "integer", "minimum": 1},
                "to": {"$ref": "#/$defs/Account"},
            },
            "$defs": {"Account": {
                "type": "object",
                "required": ["iban"],
                "properties": {"iban": {"type": "string"}},
            }},
        });
        PayloadSchema::compile("transfer", &schema, None).expect("compiles")
    }

    #[test]
    fn each_error_is_pointed_at_from_the_body() {
        let schema = transfer();
        let mut pointers: Vec<String> = schema
            .errors(&json!({"amount": 0, "to": {"iban": 7}}), "/payload")
            .into_iter()
            .map(|error| error.pointer)
            .collect();
        pointers.sort();
        assert_eq!(pointers, ["/payload/amount", "/payload/to/iban"]);
        let missing = schema.errors(&json!({"to": {}}), "/payload");
        let pointers: Vec<&str> = missing.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/payload/amount"), "{missing:?}");
        assert!(pointers.contains(&"/payload/to/iban"), "{missing:?}");
        assert!(
            schema
                .check(&json!({"amount": 3, "to": {"iban": "DE"}}))
                .is_ok()
        );
    }

    #[test]
    fn an_unchanged_schema_is_not_compiled_again() {
        let first = transfer();
        let again = PayloadSchema::compile("transfer", &first.schema.clone(), Some(&first))
            .expect("compiles");
        assert!(Arc::ptr_eq(&first.validator, &again.validator));
        let changed = PayloadSchema::compile("transfer", &json!({"type": "string"}), Some(&first))
            .expect("compiles");
        assert!(!Arc::ptr_eq(&first.validator, &changed.validator));
    }

    #[test]
    fn a_schema_that_does_not_compile_checks_nothing() {
        assert!(PayloadSchema::compile("bad", &json!({"type": 12}), None).is_none());
    }

    #[test]
    fn long_reasons_are_cut() {
        assert_eq!(shorten("x".repeat(500)).chars().count(), MAX_REASON + 1);
        assert_eq!(shorten("short".to_owned()), "short");
    }
}
