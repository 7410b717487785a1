//! The command queues of the registered types and their depths, from passive declares: what an
//! operator watches grow while a type is paused and drain when it resumes.

use axum::extract::State;
use cmdbus_auth::Scope;
use cmdbus_domain::{Lane, RETRY_TIERS};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    responses::{Forbidden, Unavailable},
};

/// What a queue holds.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum QueueRole {
    /// A type's live traffic.
    Main,
    /// One ordered partition of a type (commands with an ordering key).
    Partition,
    /// A type's first exception lane (parked failures).
    Exceptions1,
    /// A type's second exception lane.
    Exceptions2,
    /// A delay tier, shared by every type: messages wait there for a retry or a deferral.
    Retry,
}

/// One queue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueView {
    /// The queue's name on the broker.
    name: String,
    /// The command type it carries; `null` for a retry tier (shared by every type).
    #[serde(rename = "type")]
    #[schema(required = true)]
    kind: Option<String>,
    /// What it holds.
    role: QueueRole,
    /// Messages ready for delivery.
    #[schema(minimum = 0)]
    ready: u32,
    /// Messages delivered and not yet acknowledged: always `null` here, because AMQP's passive
    /// declare does not count them (the management API does, and is not used).
    #[schema(required = true, value_type = Option<u32>)]
    unacked: Option<u32>,
    /// Consumers attached (worker processes consuming it).
    #[schema(minimum = 0)]
    consumers: u32,
}

/// The queues.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueList {
    /// By type (main, partitions, exception lanes), then the retry tiers, shortest first.
    items: Vec<QueueView>,
}

/// Command queues and their depths.
///
/// Every queue of every registered type — main, ordered partitions, both exception lanes — and
/// the shared retry tiers, each with its ready messages and consumers, read by passive declares
/// (a queue not declared yet is left out). `unacked` is always `null`: AMQP does not report it,
/// and the server does not use RabbitMQ's management API. Queues are shared by every tenant of
/// the deployment: it needs `admin`.
#[utoipa::path(
    get,
    path = "/v1/queues",
    operation_id = "listQueues",
    tag = "operate",
    responses(
        (status = 200, description = "The queues.", body = QueueList),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<QueueList>, ApiError> {
    caller.require(Scope::Read)?;
    caller.require(Scope::Admin)?;
    let catalogue = state.types.catalogue(None).await?;
    let names = state.broker.names();
    let mut queues: Vec<(String, Option<String>, QueueRole)> = Vec::new();
    for kind in catalogue.keys() {
        let of = |name: String, role| (name, Some(kind.clone()), role);
        queues.push(of(names.command_queue(kind, Lane::Main), QueueRole::Main));
        for partition in 0..state.broker.partitions() {
            queues.push(of(
                names.partition_queue(kind, partition),
                QueueRole::Partition,
            ));
        }
        queues.push(of(
            names.command_queue(kind, Lane::Exceptions1),
            QueueRole::Exceptions1,
        ));
        queues.push(of(
            names.command_queue(kind, Lane::Exceptions2),
            QueueRole::Exceptions2,
        ));
    }
    for delay in RETRY_TIERS {
        queues.push((names.retry_queue(delay), None, QueueRole::Retry));
    }
    let queue_names: Vec<String> = queues.iter().map(|(name, _, _)| name.clone()).collect();
    let stats = state
        .broker
        .queue_stats(&queue_names)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "cannot read the queues");
            ApiError::Unavailable
        })?;
    Ok(ApiJson(QueueList {
        items: queues
            .into_iter()
            .zip(stats)
            .filter_map(|((name, kind, role), stats)| {
                stats.map(|stats| QueueView {
                    name,
                    kind,
                    role,
                    ready: stats.ready,
                    unacked: None,
                    consumers: stats.consumers,
                })
            })
            .collect(),
    }))
}
