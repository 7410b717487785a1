//! `GET /openapi.json`: the OpenAPI 3.1 description of the whole HTTP surface (the api, the
//! WebSocket, health and metrics), put together from each role's own routes and types, so that
//! what is described is what is served. The api's role serves it, with the command types this
//! deployment registered as the `type` a submit may name, and the JSON Schemas of its typed
//! types (`Payload.<type>`, `Result.<type>`).

use axum::{Json, Router, extract::State};
use cmdbus_store::Db;
use std::sync::{Arc, LazyLock};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, tag::TagBuilder};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{health, security, telemetry};

/// What the handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Docs {
    pool: Db,
    token_max_ttl_secs: u64,
}

pub(crate) fn router(pool: Db, token_max_ttl_secs: u64) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(Docs {
        pool,
        token_max_ttl_secs,
    })
}

fn routes() -> OpenApiRouter<Docs> {
    OpenApiRouter::new().routes(routes!(serve))
}

/// The description of every route any role serves, with the authentication of `/v1`.
pub fn openapi() -> OpenApi {
    let mut doc = cmdbus_api::openapi();
    doc.merge(cmdbus_notifier::openapi());
    doc.merge(health::routes().into_openapi());
    doc.merge(telemetry::routes().into_openapi());
    doc.merge(routes().into_openapi());
    cmdbus_api::require_bearer(&mut doc);
    telemetry::describe_security(&mut doc);
    describe_transport(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let tags = doc.tags.get_or_insert_with(Vec::new);
    for (name, description) in [
        (
            "push",
            "State changes as they happen, over a WebSocket or Server-Sent Events.",
        ),
        (
            "operations",
            "Health, readiness, metrics and this description.",
        ),
    ] {
        tags.push(
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build(),
        );
    }
    doc
}

/// What the layers around every route (`security.rs`, `body.rs`) may answer before a route
/// does: `400 host_not_allowed` for a host name this server does not answer (health probes
/// excepted), `403 origin_not_allowed` for a page of another origin, and `408 request_timeout`
/// for a body that does not arrive in time. Each is added where the route does not already
/// describe that status (whose description then names these codes too).
fn describe_transport(doc: &mut OpenApi) {
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    cmdbus_domain::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let probe = security::PROBES.contains(&path.as_str());
        for (operation, has_body) in [
            (&mut item.get, false),
            (&mut item.post, true),
            (&mut item.delete, false),
        ] {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            if !probe {
                responses.entry("400".to_owned()).or_insert_with(|| {
                    problem("`host_not_allowed`: this server does not answer for that host name.")
                });
                responses.entry("403".to_owned()).or_insert_with(|| {
                    problem("`origin_not_allowed`: pages of that origin may not call this server.")
                });
            }
            if has_body {
                responses.entry("408".to_owned()).or_insert_with(|| {
                    problem("`request_timeout`: the request body did not arrive in time.")
                });
            }
        }
    }
}

/// Built once: it depends on the code only.
static OPENAPI: LazyLock<Arc<OpenApi>> = LazyLock::new(|| Arc::new(openapi()));

/// This description (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1.", body = Object)),
)]
async fn serve(State(docs): State<Docs>) -> Json<serde_json::Value> {
    let mut doc = OpenApi::clone(&OPENAPI);
    let types = match cmdbus_store::list_types(&docs.pool).await {
        Ok(types) => types,
        // Without the catalogue the description is still true, only less precise.
        Err(error) => {
            tracing::warn!(%error, "cannot list command types for /openapi.json");
            Vec::new()
        }
    };
    let deployment = cmdbus_api::Deployment {
        types: types.iter().map(|info| info.name.clone()).collect(),
        token_max_ttl_secs: docs.token_max_ttl_secs,
    };
    cmdbus_api::describe_deployment(&mut doc, &deployment);
    // The types' own schemas are arbitrary JSON Schema, added to the description as JSON.
    let mut doc = match serde_json::to_value(&doc) {
        Ok(doc) => doc,
        Err(error) => {
            tracing::error!(%error, "cannot serialise the description");
            serde_json::Value::Null
        }
    };
    cmdbus_api::describe_type_schemas(&mut doc, &types);
    Json(doc)
}

#[cfg(test)]
mod tests {
    use super::openapi;
    use serde_json::Value;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => found.push(target),
                        _ => refs(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_of_the_description_resolves() {
        let doc = serde_json::to_value(openapi()).expect("a description");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                doc.pointer(pointer).is_some(),
                "{target} resolves to nothing"
            );
        }
        for path in ["/v1/changes", "/v1/events"] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} described");
        }
    }
}
