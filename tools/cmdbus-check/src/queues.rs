//! The broker side of the checks: which of the namespace's queues still hold messages, and
//! whether every message parked in an exception lane belongs to a row that failed in that lane.

use cmdbus_bus::{Broker, BusConfig};
use cmdbus_domain::{Lane, Names, RETRY_TIERS};
use lapin::options::BasicGetOptions;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

/// A broker connection of the checker's own on the run's namespace.
#[derive(Debug)]
pub(crate) struct CheckBroker {
    pub(crate) broker: Broker,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl CheckBroker {
    /// Connects to `url` (one node or a cluster's list) on `namespace`, whose queues were declared
    /// as `queue_type` (the core topology is declared again on connect, and must match).
    pub(crate) async fn connect(
        url: &str,
        namespace: &str,
        partitions: u16,
        queue_type: cmdbus_bus::QueueType,
    ) -> anyhow::Result<Self> {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let broker = Broker::start(
            BusConfig {
                url: url.to_owned(),
                names: Names::new(namespace),
                connection_name: "cmdbus-check".to_owned(),
                partitions,
                queue_type,
            },
            stop.clone(),
            &tracker,
        )?;
        if !broker.wait_connected(Duration::from_secs(30)).await {
            anyhow::bail!("cannot connect to the broker");
        }
        Ok(Self {
            broker,
            stop,
            tracker,
        })
    }

    pub(crate) async fn close(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The queues that carry `kind`'s work: its main queue, its partitions and the delay tiers.
    pub(crate) fn work_queues(&self, kind: &str) -> Vec<String> {
        let names = self.broker.names();
        let mut queues = vec![names.command_queue(kind, Lane::Main)];
        queues.extend((0..self.broker.partitions()).map(|p| names.partition_queue(kind, p)));
        queues.extend(RETRY_TIERS.iter().map(|delay| names.retry_queue(*delay)));
        queues
    }

    /// Main, partition and retry queues of `kind` that hold ready messages, with their depth.
    pub(crate) async fn work_queues_with_messages(&self, kind: &str) -> Vec<(String, u32)> {
        let mut held = Vec::new();
        for queue in self.work_queues(kind) {
            match self.broker.queue_depth(&queue).await {
                Ok(0) => {}
                Ok(depth) => held.push((queue, depth)),
                Err(error) => held.push((format!("{queue} (unreadable: {error})"), 0)),
            }
        }
        held
    }

    /// Every message parked in `kind`'s exception lanes whose row is not `fail` in that lane
    /// (read without acking; closing the channel puts them back). Returns the parked count, the
    /// messages of a generation a replay superseded (harmless: an exception-lane worker claims
    /// nothing with them), and the problems.
    pub(crate) async fn stray_parked(
        &self,
        pool: &PgPool,
        kind: &str,
    ) -> anyhow::Result<(usize, usize, Vec<String>)> {
        let session = self
            .broker
            .session()
            .ok_or_else(|| anyhow::anyhow!("broker unavailable"))?;
        let mut parked = 0;
        let mut superseded = 0;
        let mut problems = Vec::new();
        for lane in [Lane::Exceptions1, Lane::Exceptions2] {
            let queue = self.broker.names().command_queue(kind, lane);
            let channel = session.open_channel().await?;
            while let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            {
                parked += 1;
                let body: Value = serde_json::from_slice(&message.delivery.data)?;
                let id = body["id"].as_str().and_then(|id| Uuid::parse_str(id).ok());
                let generation = body["generation"].as_i64();
                let Some(id) = id else {
                    problems.push(format!("{queue}: a message without an id: {body}"));
                    continue;
                };
                let row: Option<(String, Option<String>, i32)> = sqlx::query_as(
                    "select status, lane, generation from all_commands where id = $1",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?;
                let lane_name = lane.suffix().unwrap_or_default();
                match row {
                    // A copy parked by a generation that a replay has since superseded: a
                    // message cannot be taken out of the middle of a queue, so it waits for an
                    // exception-lane worker, which claims nothing with it and drops it.
                    Some((_, _, row_generation))
                        if generation.is_some_and(|g| g < i64::from(row_generation)) =>
                    {
                        superseded += 1;
                    }
                    Some((status, Some(row_lane), _))
                        if status == "fail" && row_lane == lane_name => {}
                    Some((status, row_lane, row_generation)) => problems.push(format!(
                        "{queue}: parked message {body} is needed by no row: the row is \
                         {status} (lane {row_lane:?}) in generation {row_generation}"
                    )),
                    None => problems.push(format!("{queue}: parked message {body} names no row")),
                }
            }
            let _ = channel.close(200, "checked".into()).await;
        }
        Ok((parked, superseded, problems))
    }
}
