//! What a payload may hold: any JSON that PostgreSQL stores and a handler reads back exactly —
//! no NUL character in a string or a key (PostgreSQL cannot store it), no number beyond ±1e308
//! (stored as an exact decimal, it no longer parses as a double). The schema says the same, so
//! a client that follows the description is never refused.

use serde_json::Value;
use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Ref, Schema, Type, schema::AnyOfBuilder};

use crate::ApiError;

/// Largest magnitude of a number in a payload.
const MAX_NUMBER: f64 = 1e308;

/// A string with no NUL character.
const NO_NUL: &str = "^[^\\u0000]*$";

/// Why `payload` cannot be recorded, if it cannot.
pub(crate) fn check_payload(payload: &Value) -> Result<(), ApiError> {
    if let Some(path) = cmdbus_store::find_nul(payload) {
        return Err(ApiError::InvalidField {
            field: "payload",
            reason: format!("holds a NUL character (at {path}), which cannot be stored"),
        });
    }
    if let Some(path) = find_huge_number(payload, &mut String::new()) {
        return Err(ApiError::InvalidField {
            field: "payload",
            reason: format!("holds a number beyond ±{MAX_NUMBER:e} (at {path})"),
        });
    }
    Ok(())
}

fn find_huge_number(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .is_some_and(|n| n.abs() > MAX_NUMBER)
            .then(|| {
                if path.is_empty() {
                    ".".to_owned()
                } else {
                    path.clone()
                }
            }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let found = find_huge_number(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            path.push('.');
            path.push_str(key);
            let found = find_huge_number(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// The `Payload` schema: the rule above as JSON Schema, recursive through arrays and objects.
pub(crate) fn payload_schema() -> Schema {
    let no_nul = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(NO_NUL))
    };
    let nested = || Ref::from_schema_name("Payload");
    AnyOfBuilder::new()
        .description(Some(
            "Any JSON, with no NUL character in a string or a key and no number beyond ±1e308: \
             what PostgreSQL stores and a handler reads back exactly.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-MAX_NUMBER))
                .maximum(Some(MAX_NUMBER)),
        )
        .item(no_nul())
        .item(ArrayBuilder::new().items(nested()))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(no_nul()))
                .additional_properties(Some(nested())),
        )
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_and_huge_numbers_are_refused_anywhere() {
        assert!(check_payload(&json!({"a": [1, "x", {"b": 1e308}]})).is_ok());
        assert!(check_payload(&json!({"a": ["x\u{0}"]})).is_err());
        assert!(check_payload(&json!({"a\u{0}": 1})).is_err());
        assert!(check_payload(&json!([{"b": 1.7976931348623157e308}])).is_err());
        assert!(check_payload(&json!(-1.5e308)).is_err());
    }

    #[test]
    fn the_schema_reads_back_whole() {
        let schema = serde_json::to_value(payload_schema()).expect("serialises");
        assert_eq!(
            schema["anyOf"].as_array().map(Vec::len),
            Some(6),
            "{schema}"
        );
        assert_eq!(
            schema["anyOf"][5]["propertyNames"]["pattern"],
            "^[^\\u0000]*$"
        );
    }
}
