//! The registered command types, cached briefly: a submit must not cost a catalogue query.

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

use crate::{ApiError, ApiJson, ApiState, auth::Caller, responses::Unavailable};

/// How long the catalogue is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(5);

type Catalogue = Arc<BTreeMap<String, TypeInfo>>;

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
        let catalogue: Catalogue =
            Arc::new(types.into_iter().map(|t| (t.name.clone(), t)).collect());
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), Arc::clone(&catalogue)));
        Ok(catalogue)
    }

    pub(crate) async fn get(&self, name: &str) -> Result<TypeInfo, ApiError> {
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
    items: Vec<TypeInfo>,
}

/// Registered command types.
///
/// What `POST /v1/commands` accepts as `type`, with each type's defaults and an example payload.
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
    Ok(ApiJson(TypeList {
        items: catalogue.values().cloned().collect(),
    }))
}
