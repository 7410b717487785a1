//! The consume loop: one consumer per queue the worker serves, each delivery handled in its own
//! task once a handler slot is free. A task keeps its channel open until its delivery is
//! settled, so neither draining at shutdown nor another channel's error requeues work that is
//! still running.

use cmdbus_bus::{Broker, Session};
use cmdbus_domain::Lane;
use cmdbus_store::{Db, StoreError};
use futures_util::StreamExt;
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicCancelOptions, BasicQosOptions},
    types::FieldTable,
};
use std::{sync::Arc, time::Duration};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    batch::{self, Batches},
    delivery::{self, Runner},
    handler::Registry,
    lease,
    settle::settle_delivery,
    shared::Shared,
};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process: the lease holder's name.
    pub worker_id: String,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Unacked messages the broker may send ahead (per queue consumed).
    pub prefetch: u16,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// Main queues, or an exception lane.
    pub lane: Lane,
    /// On shutdown, how long running handlers may take before they are cancelled.
    pub shutdown_grace: Duration,
    /// How long past its due time a `queue` row waits before the api's sweep publishes its
    /// message again.
    pub redeliver_after: Duration,
}

/// Registers the types, then consumes until `shutdown`; lets running handlers finish (cancelling
/// them after the grace period) before it returns.
pub async fn run(
    config: WorkerConfig,
    pool: Db,
    broker: Broker,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    cmdbus_store::register_types(&pool, &registry.types()).await?;
    if let Err(error) = broker.ensure_types(&registry.names()).await {
        tracing::warn!(%error, "cannot declare queues now; the next broker session will");
    }
    let runtime = Arc::new(Runner {
        shared: Arc::new(Shared {
            pool: pool.clone(),
            broker: broker.clone(),
            lease: config.lease,
            redeliver_after: config.redeliver_after,
            last_progress: Default::default(),
        }),
        registry,
        inflight: Arc::default(),
        lane: config.lane,
        batches: Batches::start(batch::Settings {
            pool: pool.clone(),
            broker: broker.clone(),
            worker: config.worker_id.clone(),
            lease: config.lease,
            redeliver_after: config.redeliver_after,
            lane: config.lane.suffix().map(str::to_owned),
        }),
    });
    let stop_renewing = CancellationToken::new();
    let renewer = tokio::spawn(lease::renew_loop(
        Arc::clone(&runtime.shared),
        Arc::clone(&runtime.inflight),
        stop_renewing.clone(),
    ));
    let listener = tokio::spawn(lease::listen_control(
        broker.clone(),
        Arc::clone(&runtime.inflight),
        stop_renewing.clone(),
    ));
    let tasks = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut sessions = broker.watch_sessions();
    while !shutdown.is_cancelled() {
        let session = tokio::select! {
            _ = shutdown.cancelled() => break,
            session = sessions.wait_for(Option::is_some) => match session {
                Ok(session) => session.clone(),
                Err(_) => break, // the broker handle is gone
            },
        };
        let Some(session) = session else { continue };
        if let Err(error) = consume(&runtime, &session, &config, &permits, &tasks, &shutdown).await
        {
            tracing::warn!(%error, "consumer stopped");
        }
        if !shutdown.is_cancelled() {
            // Re-consume (on this session if it is still alive) after a short pause.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
    tasks.close();
    tracing::info!(running = runtime.inflight.len(), "worker draining");
    if tokio::time::timeout(config.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; cancelling running handlers");
        runtime.inflight.cancel_all();
        tasks.wait().await;
    }
    stop_renewing.cancel();
    let _ = renewer.await;
    let _ = listener.await;
    Ok(())
}

/// Consumes every registered type's queue on one channel until the channel or session ends or
/// `shutdown` fires; each delivery runs in its own task once a handler slot is free.
async fn consume(
    runtime: &Arc<Runner>,
    session: &Session,
    config: &WorkerConfig,
    permits: &Arc<Semaphore>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), cmdbus_bus::BusError> {
    let names = runtime.shared.broker.names().clone();
    let kinds = runtime.registry.names();
    let channel = session.open_channel().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut queues: Vec<(Channel, String)> = kinds
        .iter()
        .map(|kind| (channel.clone(), names.command_queue(kind, config.lane)))
        .collect();
    if config.lane == Lane::Main {
        // Ordered partitions take one message at a time. The database decides order (a command
        // waits while an earlier one of its key is unfinished); this keeps the commands of a
        // partition from all being fetched only to wait.
        let ordered = session.open_channel().await?;
        ordered.basic_qos(1, BasicQosOptions::default()).await?;
        for kind in &kinds {
            for partition in 0..runtime.shared.broker.partitions() {
                queues.push((ordered.clone(), names.partition_queue(kind, partition)));
            }
        }
    }
    let mut consumers = Vec::with_capacity(queues.len());
    let mut tags = Vec::with_capacity(queues.len());
    for (channel, queue) in &queues {
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("{}:{queue}", config.worker_id).into(),
                Default::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push((channel.clone(), consumer.tag()));
        let channel = channel.clone();
        consumers.push(consumer.map(move |delivery| (channel.clone(), delivery)));
    }
    let mut deliveries = futures_util::stream::select_all(consumers);
    tracing::info!(queues = tags.len(), lane = ?config.lane, "consuming");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = session.closed() => return Ok(()),
            next = deliveries.next() => next,
        };
        let (channel, delivery) = match next {
            Some((channel, Ok(delivery))) => (channel, delivery),
            Some((_, Err(error))) => return Err(error.into()),
            None => return Ok(()), // the broker cancelled the consumers
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break, // unstarted: requeued when the channel closes
            permit = Arc::clone(permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        tasks.spawn(process(Arc::clone(runtime), delivery, channel, permit));
    }
    // Stop new deliveries; running ones keep the channel open to ack when they finish.
    for (channel, tag) in tags {
        let _ = channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await;
    }
    Ok(())
}

async fn process(
    runtime: Arc<Runner>,
    delivery: Delivery,
    channel: Channel,
    _permit: OwnedSemaphorePermit,
) {
    let settle = delivery::handle(&runtime, &delivery).await;
    settle_delivery(&runtime.shared, delivery, settle).await;
    // Only now may the channel close (when no other task holds it): closing it earlier would
    // requeue this delivery while its run is still being recorded.
    drop(channel);
}
