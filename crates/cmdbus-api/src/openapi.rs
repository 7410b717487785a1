//! The OpenAPI 3.1 description of the REST api, derived from the code: each handler carries its
//! `#[utoipa::path]`, each wire type its `ToSchema`, and `routes()` registers a handler and its
//! description in one call, so that neither can change without the other.

use cmdbus_domain::Problem;
use serde_json::json;
use utoipa::{
    OpenApi, ToResponse,
    openapi::{
        self, Ref, RefOr,
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ApiState, audit, auth, batch_submit, bulk, changes, delayed, discard,
    error::ResetProblem,
    keys, operate, pause, queues, read,
    responses::{
        BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RateLimited, ResetGone,
        ResetNotServed, Unauthorized, Unavailable, UnprocessableEntity, UnsupportedMediaType,
    },
    runs, schedules, search, stats, submit, types,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cmdbus",
        description = "An HTTP command bus with a status database and push notifications. \
                       Errors are `application/problem+json` (RFC 9457) with a stable `code`.",
    ),
    components(
        schemas(Problem, ResetProblem),
        responses(
            ResetNotServed,
            ResetGone,
            BadRequest,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            UnprocessableEntity,
            Unavailable,
            Unauthorized,
            Forbidden,
            RateLimited,
        ),
    ),
    tags(
        (name = "commands", description = "Submit and read commands."),
        (name = "operate", description = "What operators do: replay, cancel and discard (one or in bulk), re-time a scheduled command, pause and resume a type, recurring commands (schedules), see the workers and queues, read the audit trail."),
        (name = "access", description = "Who is calling, browser tokens and API keys."),
    ),
)]
struct ApiDoc;

/// The `/v1` routes with their descriptions. The api's router and its description both come
/// from here.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(submit::submit, search::list))
        .routes(routes!(search::counts))
        .routes(routes!(stats::stats))
        .routes(routes!(batch_submit::submit_batch))
        .routes(routes!(operate::retry_matching))
        .routes(routes!(bulk::cancel_matching))
        .routes(routes!(discard::discard_matching))
        .routes(routes!(read::show))
        .routes(routes!(changes::changes))
        .routes(routes!(runs::attempts))
        .routes(routes!(runs::workers))
        .routes(routes!(operate::retry))
        .routes(routes!(operate::cancel))
        .routes(routes!(discard::discard))
        .routes(routes!(delayed::reschedule))
        .routes(routes!(types::list))
        .routes(routes!(pause::pause))
        .routes(routes!(pause::resume))
        .routes(routes!(queues::list))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(schedules::delete))
        .routes(routes!(audit::list))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::mint))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
}

/// The description of the api's routes (without the authentication every `/v1` route gets:
/// `require_bearer` adds it to the whole server's description).
pub fn openapi() -> openapi::OpenApi {
    let mut doc = routes().into_openapi();
    sub_or_ids(&mut doc);
    doc
}

/// A token request names a subject, or ids, or both: a rule across fields, which no field's
/// own schema can state. Said as `if` (no ids) `then` (a subject) rather than as `anyOf`, whose
/// branches test generators negate one at a time (a request that breaks one branch while the
/// other holds is still valid). utoipa's model has no field for `if`, hence the raw keywords.
fn sub_or_ids(doc: &mut openapi::OpenApi) {
    let Some(RefOr::T(openapi::Schema::Object(request))) = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("TokenRequest"))
    else {
        return;
    };
    let keywords = request.extensions.get_or_insert_with(Default::default);
    keywords.insert(
        "if".to_owned(),
        json!({"not": {"required": ["ids"], "properties": {"ids": {"minItems": 1}}}}),
    );
    keywords.insert(
        "then".to_owned(),
        json!({"required": ["sub"], "properties": {"sub": {"type": "string"}}}),
    );
}

/// Every `/v1` operation needs `Authorization: Bearer` (an API key, or a browser token for
/// reads and push), and may answer `401` and `429` before it even starts (`403` where it needs
/// a scope, which each operation states). An operation that states its own security (the
/// WebSocket, whose browser clients authenticate in a message) is left as it is.
pub fn require_bearer(doc: &mut openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key, or a short-lived browser token (reads and push only).",
                ))
                .build(),
        ),
    );
    components
        .responses
        .insert("Unauthorized".to_owned(), Unauthorized::response().1);
    components
        .responses
        .insert("RateLimited".to_owned(), RateLimited::response().1);
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for operation in operations(item) {
            if operation.security.is_some() {
                continue;
            }
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            for (status, name) in [("401", "Unauthorized"), ("429", "RateLimited")] {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
}

/// What a deployment decides that the description states.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The registered command types: the `enum` of a submit's `type`, so that a client (or a
    /// test generator) that follows the description submits only commands someone will run.
    pub types: Vec<String>,
    /// The longest lifetime of a browser token, in seconds (`CMDBUS_TOKEN_MAX_TTL_SECS`).
    pub token_max_ttl_secs: u64,
}

/// The description as this deployment serves it.
pub fn describe_deployment(doc: &mut openapi::OpenApi, deployment: &Deployment) {
    if !deployment.types.is_empty()
        && let Some(kind) = property(doc, "SubmitRequest", "type")
    {
        let names = deployment.types.iter().map(|name| name.as_str().into());
        kind.enum_values = Some(names.collect());
    }
    if let Some(ttl) = property(doc, "TokenRequest", "ttl_secs") {
        ttl.maximum = Some(deployment.token_max_ttl_secs.into());
    }
}

/// The object schema of property `name` of component `schema`.
fn property<'a>(
    doc: &'a mut openapi::OpenApi,
    schema: &str,
    name: &str,
) -> Option<&'a mut openapi::Object> {
    let schema = doc.components.as_mut()?.schemas.get_mut(schema)?;
    let RefOr::T(openapi::Schema::Object(object)) = schema else {
        return None;
    };
    match object.properties.get_mut(name)? {
        RefOr::T(openapi::Schema::Object(property)) => Some(property),
        _ => None,
    }
}

/// Every operation of a path item.
fn operations(item: &mut openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
