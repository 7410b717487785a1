//! The JSON Schemas of the registered command types in the served description: each typed
//! type's payload schema becomes the component `Payload.<type>` and its result schema
//! `Result.<type>` (subschemas under `$defs` become `Payload.<type>.<name>`), so that a
//! generated client (openapi-typescript) has a type per command type. The submit body keeps its
//! one `Payload` schema and names these in its description: generators and test tools then see
//! one plain request body, while the server checks each type's payload against its own schema.
//!
//! The schemas are arbitrary JSON Schema (2020-12, OpenAPI 3.1's dialect), which utoipa's model
//! cannot hold without loss, so this works on the description as JSON.

use cmdbus_domain::TypeInfo;
use serde_json::{Map, Value};

/// Adds each typed type's schemas to `doc` (an OpenAPI 3.1 description as JSON).
pub fn describe_type_schemas(doc: &mut Value, types: &[TypeInfo]) {
    let mut added = Vec::new();
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for info in types {
        let name = component_name(&info.name);
        let mut typed = false;
        for (prefix, schema) in [
            ("Payload", &info.payload_schema),
            ("Result", &info.result_schema),
        ] {
            let Some(schema) = schema else { continue };
            let component = format!("{prefix}.{name}");
            match hoist(&component, schema) {
                Some(parts) => {
                    schemas.extend(parts);
                    typed |= prefix == "Payload";
                }
                None => tracing::warn!(
                    r#type = info.name,
                    "a schema refers outside itself; left out of /openapi.json"
                ),
            }
        }
        if typed {
            added.push((info.name.clone(), format!("Payload.{name}")));
        }
    }
    if added.is_empty() {
        return;
    }
    let list: Vec<String> = added
        .iter()
        .map(|(kind, component)| format!("`{kind}`: `#/components/schemas/{component}`"))
        .collect();
    if let Some(Value::Object(request)) = schemas.get_mut("SubmitRequest") {
        let said = request
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let typed = format!(
            "A typed command type's payload must follow its type's schema, else `422 \
             invalid_payload`: {}.",
            list.join(", ")
        );
        let description = if said.is_empty() {
            typed
        } else {
            format!("{said}\n\n{typed}")
        };
        request.insert("description".to_owned(), Value::String(description));
    }
}

/// A component name for the type `kind`: OpenAPI allows `[A-Za-z0-9._-]` only.
fn component_name(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `schema` as the component `component` and its `$defs` as `component.<name>`, with their
/// references pointed at the components; `None` when a reference points anywhere else.
fn hoist(component: &str, schema: &Value) -> Option<Map<String, Value>> {
    let mut root = schema.clone();
    let mut parts = Map::new();
    if let Value::Object(object) = &mut root {
        object.remove("$schema");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            for (name, def) in defs {
                parts.insert(format!("{component}.{}", component_name(&name)), def);
            }
        }
    }
    parts.insert(component.to_owned(), root);
    let names: Vec<String> = parts.keys().cloned().collect();
    for part in parts.values_mut() {
        if !point_refs(part, component, &names) {
            return None;
        }
    }
    Some(parts)
}

/// Rewrites `#` and `#/$defs/<name>` references to the components; false if any other remains.
fn point_refs(value: &mut Value, component: &str, names: &[String]) -> bool {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref") {
                let target = if reference == "#" {
                    Some(component.to_owned())
                } else {
                    reference
                        .strip_prefix("#/$defs/")
                        .map(|name| format!("{component}.{}", component_name(name)))
                };
                match target.filter(|target| names.contains(target)) {
                    Some(target) => *reference = format!("#/components/schemas/{target}"),
                    None => return false,
                }
            }
            object
                .iter_mut()
                .filter(|(key, _)| key.as_str() != "$ref")
                .all(|(_, value)| point_refs(value, component, names))
        }
        Value::Array(items) => items
            .iter_mut()
            .all(|item| point_refs(item, component, names)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(name: &str, payload: Value) -> TypeInfo {
        TypeInfo {
            name: name.to_owned(),
            description: String::new(),
            max_attempts: 1,
            example: None,
            payload_schema: Some(payload),
            result_schema: Some(json!({"type": "integer"})),
        }
    }

    #[test]
    fn subschemas_become_components_and_references_follow() {
        let mut doc =
            json!({"components": {"schemas": {"SubmitRequest": {"description": "Body."}}}});
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/Account"}, "next": {"$ref": "#"}},
            "$defs": {"Account": {"type": "object", "properties": {"parent": {"$ref": "#/$defs/Account"}}}},
        });
        describe_type_schemas(
            &mut doc,
            &[typed("bank.transfer", schema), typed("a b", json!({}))],
        );
        let schemas = &doc["components"]["schemas"];
        let payload = &schemas["Payload.bank.transfer"];
        assert_eq!(payload.get("$schema"), None);
        assert_eq!(payload.get("$defs"), None);
        assert_eq!(
            payload["properties"]["to"]["$ref"],
            "#/components/schemas/Payload.bank.transfer.Account"
        );
        assert_eq!(
            payload["properties"]["next"]["$ref"],
            "#/components/schemas/Payload.bank.transfer"
        );
        assert_eq!(
            schemas["Payload.bank.transfer.Account"]["properties"]["parent"]["$ref"],
            "#/components/schemas/Payload.bank.transfer.Account"
        );
        assert_eq!(schemas["Result.bank.transfer"], json!({"type": "integer"}));
        assert!(schemas.get("Payload.a_b").is_some());
        let description = schemas["SubmitRequest"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.starts_with("Body.\n\n"), "{description}");
        assert!(
            description.contains("`bank.transfer`: `#/components/schemas/Payload.bank.transfer`")
        );
    }

    #[test]
    fn a_schema_that_refers_elsewhere_is_left_out() {
        let mut doc = json!({"components": {"schemas": {}}});
        let schema = json!({"$ref": "https://example.com/schema.json"});
        describe_type_schemas(&mut doc, &[typed("remote", schema)]);
        assert_eq!(doc["components"]["schemas"].get("Payload.remote"), None);
        assert!(doc["components"]["schemas"].get("Result.remote").is_some());
    }
}
