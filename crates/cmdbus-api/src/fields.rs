//! The rules for the names a client sends (a command type, an ordering key, an idempotency key,
//! a filter), in one place with the schemas that state them in the OpenAPI description: what
//! the description calls valid, the api accepts, and what it calls invalid, the api refuses.

use cmdbus_auth::Scope;
use serde::{Deserialize, Deserializer, de::Error as _};
use utoipa::openapi::{Array, ArrayBuilder, Object, ObjectBuilder, Type, schema::SchemaType};

use crate::ApiError;

/// Longest name, in characters.
pub(crate) const MAX_NAME: usize = 200;

/// No control character anywhere: Unicode's `Cc`, what `char::is_control` means. PostgreSQL
/// cannot store NUL, and the others have no business in a name.
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Visible ASCII, spaces inside only: what an HTTP header carries unchanged (a header's leading
/// and trailing spaces are not part of its value).
const HEADER_TOKEN: &str = "^[\\u0021-\\u007E]([\\u0020-\\u007E]*[\\u0021-\\u007E])?$";

/// A name: 1 to `MAX_NAME` characters, none of them a control character.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), ApiError> {
    let length = value.chars().count();
    if length == 0 || length > MAX_NAME {
        return Err(ApiError::InvalidField {
            field,
            reason: format!("must be 1 to {MAX_NAME} characters"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::InvalidField {
            field,
            reason: "must not hold control characters".to_owned(),
        });
    }
    Ok(())
}

/// `check_name` for a query parameter: the same rule, answered `400 invalid_query`.
pub(crate) fn check_filter(parameter: &'static str, value: &str) -> Result<(), ApiError> {
    check_name(parameter, value).map_err(|error| ApiError::InvalidQuery(error.to_string()))
}

/// An optional integer field, which JSON may spell `3` or `3.0`: JSON Schema's `integer` is any
/// number without a fractional part, so a client that follows the description may send either.
pub(crate) fn integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|n| n.fract() == 0.0 && n.abs() < 2f64.powi(53))
            .map(|n| n as i64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not an integer in range")))
}

/// The schema `check_name` enforces, described. (A field whose schema comes from a function
/// loses its doc comment, hence the description here.)
pub(crate) fn name_schema(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME))
        .pattern(Some(NO_CONTROL))
        .build()
}

/// `name_schema`, or `null`.
pub(crate) fn nullable_name_schema(description: &str) -> Object {
    let mut schema = name_schema(description);
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

/// The schema of an `Idempotency-Key`: a name that is also a header value.
pub(crate) fn header_key_schema(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME))
        .pattern(Some(HEADER_TOKEN))
        .build()
}

/// A list of scope names, each one of `allowed`, at least `min_items` of them.
pub(crate) fn scopes_schema(description: &str, allowed: &[Scope], min_items: usize) -> Array {
    ArrayBuilder::new()
        .description(Some(description))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(allowed.iter().map(|scope| scope.as_str()))),
        )
        .min_items((min_items > 0).then_some(min_items))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Priority {
        #[serde(default, deserialize_with = "integer")]
        priority: Option<i16>,
    }

    #[test]
    fn an_integer_may_be_spelt_as_a_whole_float() {
        let read = |json: &str| serde_json::from_str::<Priority>(json).map(|p| p.priority);
        assert_eq!(read(r#"{"priority": 3}"#).ok(), Some(Some(3)));
        assert_eq!(read(r#"{"priority": 3.0}"#).ok(), Some(Some(3)));
        assert_eq!(read(r#"{"priority": null}"#).ok(), Some(None));
        assert_eq!(read("{}").ok(), Some(None));
        assert!(read(r#"{"priority": 3.5}"#).is_err());
        assert!(read(r#"{"priority": 1e300}"#).is_err());
        assert!(read(r#"{"priority": 40000}"#).is_err(), "beyond i16");
        assert!(read(r#"{"priority": "3"}"#).is_err());
    }

    #[test]
    fn names_count_characters_and_refuse_control_characters() {
        assert!(check_name("f", "demo.echo").is_ok());
        // 200 characters of two bytes each: the limit is in characters, as `maxLength` says.
        assert!(check_name("f", &"é".repeat(MAX_NAME)).is_ok());
        assert!(check_name("f", &"é".repeat(MAX_NAME + 1)).is_err());
        assert!(check_name("f", "").is_err());
        for bad in ["a\0b", "a\nb", "\u{7f}", "\u{9f}"] {
            assert!(check_name("f", bad).is_err(), "{bad:?}");
        }
        assert!(
            check_name("f", "\u{a0}").is_ok(),
            "no-break space is not a control"
        );
    }
}
