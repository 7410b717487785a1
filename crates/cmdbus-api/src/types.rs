//! The registered command types, cached briefly: a submit must not cost a catalogue query. With
//! each type the cache keeps its payload schema's compiled validator (`schema.rs`), compiled
//! again only when a reload finds the schema changed (a worker registered a new version).

use axum::extract::State;
use cmdbus_bus::Broker;
use cmdbus_domain::TypeInfo;
use cmdbus_store::Db;
use serde::Serialize;
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState, auth::Caller, responses::Unavailable, schema::PayloadSchema,
};

/// How long the catalogue is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// A registered type as the api uses it.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub(crate) info: TypeInfo,
    /// The payload schema's validator; `None` when the type declares no schema (any payload).
    pub(crate) schema: Option<PayloadSchema>,
}

type Catalogue = Arc<BTreeMap<String, Kind>>;

#[derive(Debug)]
pub(crate) struct TypeCache {
    pool: Db,
    broker: Broker,
    cached: RwLock<Option<(Instant, Catalogue)>>,
}

impl TypeCache {
    pub(crate) fn new(pool: Db, broker: Broker) -> Self {
        Self {
            pool,
            broker,
            cached: RwLock::new(None),
        }
    }

    /// The catalogue, reloaded when stale or when `name` is missing from it (a worker may have
    /// registered it a moment ago).
    pub(crate) async fn catalogue(&self, name: Option<&str>) -> Result<Catalogue, ApiError> {
        if let Some((loaded, catalogue)) = self
            .cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && loaded.elapsed() < FRESH_FOR
            && name.is_none_or(|name| catalogue.contains_key(name))
        {
            return Ok(Arc::clone(catalogue));
        }
        let types = cmdbus_store::list_types(&self.pool).await?;
        let names: Vec<String> = types.iter().map(|t| t.name.clone()).collect();
        // Publishing with `mandatory` needs the type's queue: declare what we accept.
        if let Err(error) = self.broker.ensure_types(&names).await {
            tracing::warn!(%error, "cannot declare type queues now");
        }
        let previous = self
            .cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(_, catalogue)| Arc::clone(catalogue));
        let catalogue: Catalogue = Arc::new(
            types
                .into_iter()
                .map(|info| {
                    let before = previous
                        .as_ref()
                        .and_then(|previous| previous.get(&info.name))
                        .and_then(|kind| kind.schema.as_ref());
                    let schema = info
                        .payload_schema
                        .as_ref()
                        .and_then(|schema| PayloadSchema::compile(&info.name, schema, before));
                    (info.name.clone(), Kind { info, schema })
                })
                .collect(),
        );
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), Arc::clone(&catalogue)));
        Ok(catalogue)
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Kind, ApiError> {
        self.catalogue(Some(name))
            .await?
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::UnknownType(name.to_owned()))
    }
}

/// The catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TypeList {
    /// Every registered type, by name.
    items: Vec<TypeEntry>,
}

/// A registered type, and whether an operator paused it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TypeEntry {
    #[serde(flatten)]
    info: TypeInfo,
    /// Paused by an operator (`POST /v1/types/{name}/pause`): workers take no new deliveries.
    paused: bool,
}

/// Registered command types.
///
/// What `POST /v1/commands` accepts as `type`, with each type's defaults, an example payload,
/// and the JSON Schemas of its payload (checked at submit) and result, where it declares them, and
/// whether it is paused.
#[utoipa::path(
    get,
    path = "/v1/types",
    operation_id = "listTypes",
    tag = "commands",
    responses(
        (status = 200, description = "The catalogue.", body = TypeList),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<ApiJson<TypeList>, ApiError> {
    let catalogue = state.types.catalogue(None).await?;
    // Read each time, not cached: an operator expects a pause to show at once.
    let paused = cmdbus_store::paused_types(&state.pool).await?;
    Ok(ApiJson(TypeList {
        items: catalogue
            .values()
            .map(|kind| TypeEntry {
                paused: paused.contains(&kind.info.name),
                info: kind.info.clone(),
            })
            .collect(),
    }))
}
