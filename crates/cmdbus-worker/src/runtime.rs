//! The consume loop: one consumer per queue the worker serves, each delivery handled in its own
//! task once a handler slot is free. A task keeps its channel open until its delivery is
//! settled, so neither draining at shutdown nor another channel's error requeues work that is
//! still running. A type an operator pauses is not consumed: when the paused set changes (read
//! with each heartbeat, `presence.rs`), the round's consumers are cancelled and the next round
//! consumes only the types not paused; deliveries already running finish, and those fetched
//! but not started go back to their queue when the round's channel closes.

use cmdbus_bus::{Broker, Session};
use cmdbus_domain::Lane;
use cmdbus_store::{Db, StoreError, WorkerBeat};
use futures_util::StreamExt;
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicCancelOptions, BasicQosOptions},
    types::FieldTable,
};
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use crate::{
    acks::Acks,
    batch::{self, Batches},
    delivery::{self, Runner},
    executor::HandlerRuntime,
    handler::Registry,
    lease, presence,
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
    /// The machine it runs on, for its heartbeat row.
    pub host: String,
    /// Silence after which the api releases this worker's runs (written into its heartbeat
    /// row, which is renewed every fifth of it); the worker stops its handlers first.
    pub dead_after: Duration,
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
            machinery: tokio::runtime::Handle::current(),
        }),
        registry,
        inflight: Arc::default(),
        lane: config.lane,
        batches: Batches::start(batch::Settings {
            pool: pool.for_batches(),
            broker: broker.clone(),
            worker: config.worker_id.clone(),
            lease: config.lease,
            redeliver_after: config.redeliver_after,
            lane: config.lane.suffix().map(str::to_owned),
        }),
        // Threads that cannot be started now: said as the I/O error it is.
        handlers: HandlerRuntime::start()
            .map_err(|error| StoreError::from(sqlx::Error::Io(error)))?,
    });
    let row = WorkerBeat {
        id: config.worker_id.clone(),
        host: config.host.clone(),
        pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        lane: config.lane.suffix().map(str::to_owned),
        concurrency: i32::try_from(config.concurrency).unwrap_or(i32::MAX),
        dead_after: config.dead_after,
        stopping: false,
    };
    // The row exists before the first claim, unless PostgreSQL is away (the loop writes it);
    // the paused types are known before the first consume, so a pause survives a restart.
    let paused = Arc::new(watch::channel(BTreeSet::new()).0);
    presence::beat(&pool, &row, &runtime.inflight, &paused).await;
    let stop_renewing = CancellationToken::new();
    let draining = CancellationToken::new();
    let beats = tokio::spawn(presence::beat_loop(
        pool.clone(),
        row,
        Arc::clone(&runtime.inflight),
        Arc::clone(&paused),
        draining.clone(),
        stop_renewing.clone(),
    ));
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
        let round = Round {
            permits: &permits,
            tasks: &tasks,
            paused: paused.subscribe(),
            shutdown: &shutdown,
        };
        if let Err(error) = consume(&runtime, &session, &config, round).await {
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
    draining.cancel();
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
    let _ = beats.await;
    presence::gone(&pool, &config.worker_id).await;
    Ok(())
}

/// What one consume round shares with the loop that drives it.
struct Round<'a> {
    permits: &'a Arc<Semaphore>,
    tasks: &'a TaskTracker,
    /// The paused types; a change ends the round.
    paused: watch::Receiver<BTreeSet<String>>,
    shutdown: &'a CancellationToken,
}

/// Consumes the queues of every registered type that is not paused, on one channel, until the
/// channel or session ends, the paused set changes or `shutdown` fires; each delivery runs in
/// its own task once a handler slot is free.
async fn consume(
    runtime: &Arc<Runner>,
    session: &Session,
    config: &WorkerConfig,
    round: Round<'_>,
) -> Result<(), cmdbus_bus::BusError> {
    let Round {
        permits,
        tasks,
        mut paused,
        shutdown,
    } = round;
    let names = runtime.shared.broker.names().clone();
    let kinds: Vec<String> = {
        let paused = paused.borrow_and_update();
        let kinds = runtime.registry.names();
        kinds
            .into_iter()
            .filter(|kind| !paused.contains(kind))
            .collect()
    };
    // A broker that stops answering while the consumers start never replies: a stop, or the
    // session's end, must not wait for it.
    let start = async {
        let channel = session.open_channel().await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let mut queues: Vec<(Channel, String)> = kinds
            .iter()
            .map(|kind| (channel.clone(), names.command_queue(kind, config.lane)))
            .collect();
        if config.lane == Lane::Main {
            // Ordered partitions are consumed like the main queue, many messages at once: the
            // database decides order, and a delivery that is not its key's turn is held there and
            // acked (`hold`), so fetching it early costs nothing and the keys of one partition run
            // side by side.
            for kind in &kinds {
                for partition in 0..runtime.shared.broker.partitions() {
                    queues.push((channel.clone(), names.partition_queue(kind, partition)));
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
        Ok::<_, cmdbus_bus::BusError>((consumers, tags))
    };
    let (consumers, tags) = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = session.closed() => return Ok(()),
        started = start => started?,
    };
    let mut deliveries = futures_util::stream::select_all(consumers);
    // One channel, one ledger of its delivery tags.
    let acks = Acks::start();
    tracing::info!(queues = tags.len(), lane = ?config.lane, "consuming");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = session.closed() => return Ok(()),
            // Paused or resumed: the next round consumes what is not paused.
            // (`run` holds the sender for as long as it consumes: never closed here.)
            _ = paused.changed() => break,
            // With every type paused there is nothing to consume until one is resumed.
            next = deliveries.next(), if !tags.is_empty() => next,
        };
        let (channel, delivery) = match next {
            Some((channel, Ok(delivery))) => (channel, delivery),
            Some((_, Err(error))) => return Err(error.into()),
            None => return Ok(()), // the broker cancelled the consumers
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break, // unstarted: requeued when the channel closes
            // Paused while waiting for a slot: back to its queue when the channel closes.
            Ok(()) = paused.changed() => break,
            permit = Arc::clone(permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let acks = acks.clone();
        tasks.spawn(process(
            Arc::clone(runtime),
            delivery,
            channel,
            acks,
            permit,
        ));
    }
    // Stop new deliveries; running ones keep the channel open to ack when they finish. A broker
    // that stopped answering (its node hung, the network cut) never confirms a cancel: waiting
    // for it held a graceful stop for ever, so the cancels share one bound. Deliveries they did
    // not stop are requeued by the broker when the channel closes, and a claim fences any copy.
    let cancels = tags
        .iter()
        .map(|(channel, tag)| channel.basic_cancel(tag.clone(), BasicCancelOptions::default()));
    if tokio::time::timeout(CANCEL_WITHIN, futures_util::future::join_all(cancels))
        .await
        .is_err()
    {
        tracing::warn!(
            within = ?CANCEL_WITHIN,
            "the broker did not confirm the consumers' cancel; draining without it"
        );
    }
    Ok(())
}

/// Longest wait for the broker to confirm that a round's consumers are cancelled.
const CANCEL_WITHIN: Duration = Duration::from_secs(5);

async fn process(
    runtime: Arc<Runner>,
    delivery: Delivery,
    channel: Channel,
    acks: Acks,
    _permit: OwnedSemaphorePermit,
) {
    let (settle, span) = delivery::handle(&runtime, &delivery).await;
    settle_delivery(&runtime.shared, &acks, delivery, settle)
        .instrument(span)
        .await;
    // Only now may the channel close (when no other task holds it): closing it earlier would
    // requeue this delivery while its run is still being recorded.
    drop(channel);
}
