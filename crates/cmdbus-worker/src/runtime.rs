//! The consume loop and the life of one delivery: claim → run → finish in PostgreSQL → publish
//! the event → ack. The ack always comes last, so a crash anywhere before it leaves a message
//! that the broker delivers again, and the claim decides whether it still has work to do.

use cmdbus_bus::{Broker, Session};
use cmdbus_domain::{CommandMessage, Lane, Status};
use cmdbus_store::{Claim, CommandRow, Finish, Outcome, StoreError};
use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicCancelOptions, BasicQosOptions},
    types::FieldTable,
};
use sqlx::PgPool;
use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    Context, HandlerError, Registry,
    context::Shared,
    lease::{self, Inflight},
    settle::{Settle, backoff_tier, settle_delivery, tier_at_least},
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
}

/// Everything a delivery's task needs.
pub(crate) struct Runtime {
    pub(crate) shared: Arc<Shared>,
    registry: Registry,
    inflight: Arc<Inflight>,
    pub(crate) lane: Lane,
}

/// Registers the types, then consumes until `shutdown`; lets running handlers finish (cancelling
/// them after the grace period) before it returns.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    broker: Broker,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    cmdbus_store::register_types(&pool, &registry.types()).await?;
    if let Err(error) = broker.ensure_types(&registry.names()).await {
        tracing::warn!(%error, "cannot declare queues now; the next broker session will");
    }
    let runtime = Arc::new(Runtime {
        shared: Arc::new(Shared {
            pool,
            broker: broker.clone(),
            worker: config.worker_id.clone(),
            lease: config.lease,
            last_progress: Default::default(),
        }),
        registry,
        inflight: Arc::default(),
        lane: config.lane,
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
    runtime: &Arc<Runtime>,
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
    let mut queues: Vec<(lapin::Channel, String, bool)> = kinds
        .iter()
        .map(|kind| {
            (
                channel.clone(),
                names.command_queue(kind, config.lane),
                false,
            )
        })
        .collect();
    if config.lane == Lane::Main {
        // Ordered partitions take one message at a time, so that nothing overtakes.
        let ordered = session.open_channel().await?;
        ordered.basic_qos(1, BasicQosOptions::default()).await?;
        for kind in &kinds {
            for partition in 0..runtime.shared.broker.partitions() {
                queues.push((
                    ordered.clone(),
                    names.partition_queue(kind, partition),
                    true,
                ));
            }
        }
    }
    let mut consumers = Vec::with_capacity(queues.len());
    let mut tags = Vec::with_capacity(queues.len());
    for (channel, queue, ordered) in &queues {
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("{}:{queue}", config.worker_id).into(),
                Default::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push((channel.clone(), consumer.tag()));
        let ordered = *ordered;
        consumers.push(consumer.map(move |delivery| (ordered, delivery)));
    }
    let mut deliveries = futures_util::stream::select_all(consumers);
    tracing::info!(queues = tags.len(), lane = ?config.lane, "consuming");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = session.closed() => return Ok(()),
            next = deliveries.next() => next,
        };
        let (ordered, delivery) = match next {
            Some((ordered, Ok(delivery))) => (ordered, delivery),
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
        tasks.spawn(process(Arc::clone(runtime), delivery, ordered, permit));
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
    runtime: Arc<Runtime>,
    delivery: Delivery,
    ordered: bool,
    _permit: OwnedSemaphorePermit,
) {
    let settle = match serde_json::from_slice::<CommandMessage>(&delivery.data) {
        Ok(message) => handle_message(&runtime, message).await,
        Err(error) => {
            tracing::error!(%error, "undecodable message; parking it");
            metrics::counter!("cmdbus_deliveries_skipped_total", "reason" => "undecodable")
                .increment(1);
            Settle::Park
        }
    };
    let settle = match settle {
        // An ordered command waits in place, holding its partition, so that nothing overtakes
        // it; then it is redelivered to the same (single active) consumer.
        Settle::Delay(delay_ms) if ordered => {
            tokio::time::sleep(Duration::from_millis(u64::from(delay_ms))).await;
            Settle::Requeue
        }
        settle => settle,
    };
    settle_delivery(&runtime, delivery, settle).await;
}

async fn handle_message(runtime: &Runtime, message: CommandMessage) -> Settle {
    let shared = &runtime.shared;
    let claim = Claim {
        id: message.id,
        generation: message.generation,
    };
    let lane = runtime.lane.suffix();
    let claimed =
        match cmdbus_store::claim(&shared.pool, &[claim], &shared.worker, shared.lease, lane).await
        {
            Ok(mut rows) => rows.pop(),
            Err(error) => {
                tracing::warn!(%error, id = %message.id, "cannot claim; requeueing");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Settle::Requeue;
            }
        };
    let Some(row) = claimed else {
        return unclaimed(runtime, message).await;
    };
    announce(&shared.broker, std::slice::from_ref(&row)).await;
    let started = std::time::Instant::now();
    let outcome = run_handler(runtime, &row).await;
    let labels = [
        ("type", row.kind.clone()),
        ("outcome", outcome.name().to_owned()),
    ];
    metrics::histogram!("cmdbus_handler_seconds", &labels).record(started.elapsed());
    metrics::counter!("cmdbus_attempts_total", &labels).increment(1);
    finish(runtime, &row, outcome).await
}

/// A delivery that claimed nothing: a duplicate, a stale generation, or a command another worker
/// holds. Only the last needs a second look later, in case that worker dies.
async fn unclaimed(runtime: &Runtime, message: CommandMessage) -> Settle {
    let row = match cmdbus_store::lookup(&runtime.shared.pool, message.id).await {
        Ok(row) => row,
        Err(error) => {
            tracing::warn!(%error, id = %message.id, "cannot look up command; requeueing");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Settle::Requeue;
        }
    };
    let Some(row) = row else {
        tracing::warn!(id = %message.id, "message for an unknown command; dropping it");
        return Settle::Ack;
    };
    let held = row.status == Status::Running.as_str() && row.generation == message.generation;
    match (held, row.lease_until) {
        (true, Some(until)) => {
            let remaining = (until - chrono::Utc::now()).num_milliseconds().max(0) as u64;
            tracing::debug!(id = %row.id, remaining, "held by another worker; deferring");
            metrics::counter!("cmdbus_deliveries_skipped_total", "reason" => "held").increment(1);
            Settle::Delay(tier_at_least(remaining))
        }
        _ => {
            // A duplicate or stale copy: nothing to do.
            metrics::counter!("cmdbus_deliveries_skipped_total", "reason" => "duplicate")
                .increment(1);
            Settle::Ack
        }
    }
}

async fn run_handler(runtime: &Runtime, row: &CommandRow) -> Outcome {
    let lease = runtime.inflight.insert(row.id);
    let ctx = Context {
        id: row.id,
        kind: row.kind.clone(),
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        cancel: lease.cancel.clone(),
        shared: Arc::clone(&runtime.shared),
    };
    let result = match runtime.registry.call(&row.kind, ctx, row.payload.0.clone()) {
        // Its own task, so that a panicking handler fails its command, not the worker.
        Some(future) => match tokio::spawn(future).await {
            Ok(result) => result,
            Err(error) => Err(HandlerError::permanent(
                "panicked",
                format!("handler panicked: {error}"),
            )),
        },
        None => Err(HandlerError::permanent(
            "unknown_type",
            format!("no handler for {}", row.kind),
        )),
    };
    let cancel_requested = lease.cancel_requested.load(Ordering::SeqCst);
    match result {
        Ok(value) => Outcome::Success(value),
        Err(_) if cancel_requested => Outcome::Cancelled,
        Err(_) if runtime.inflight_shutdown(&lease) => Outcome::Released,
        Err(error) if error.retryable && row.attempt < row.max_attempts => Outcome::Retry(
            error.info(),
            Duration::from_millis(u64::from(backoff_tier(row.attempt))),
        ),
        Err(error) => Outcome::Fail(error.info()),
    }
}

impl Runtime {
    /// The handler stopped because the worker is shutting down (not cancelled, lease kept).
    fn inflight_shutdown(&self, lease: &lease::Lease) -> bool {
        lease.cancel.is_cancelled() && !lease.lost.load(Ordering::SeqCst)
    }
}

/// Records the end of the attempt (retrying while the database is away), publishes the event,
/// and says how to settle the message.
async fn finish(runtime: &Runtime, row: &CommandRow, outcome: Outcome) -> Settle {
    let shared = &runtime.shared;
    let settle = match &outcome {
        Outcome::Success(_) | Outcome::Cancelled => Settle::Ack,
        Outcome::Fail(_) => Settle::Park,
        Outcome::Retry(..) => Settle::Delay(backoff_tier(row.attempt)),
        Outcome::Released => Settle::Requeue,
    };
    let lane = matches!(outcome, Outcome::Fail(_))
        .then(|| runtime.lane.parked_in().suffix().map(str::to_owned))
        .flatten();
    let request = Finish {
        id: row.id,
        worker: shared.worker.clone(),
        attempt: row.attempt,
        outcome,
        lane,
    };
    let mut delay = Duration::from_millis(100);
    let finished = loop {
        match cmdbus_store::finish(&shared.pool, std::slice::from_ref(&request)).await {
            Ok(rows) => break Some(rows),
            // Still ours while the lease lasts (the renewer keeps it while it can).
            Err(error) if delay < shared.lease => {
                tracing::warn!(%error, id = %row.id, "cannot record the outcome; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(error) => {
                tracing::error!(%error, id = %row.id, "cannot record the outcome; requeueing");
                break None;
            }
        }
    };
    runtime.inflight.remove(row.id);
    shared
        .last_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&row.id);
    match finished {
        None => Settle::Requeue,
        Some(rows) if rows.is_empty() => {
            // Fenced out: our lease was lost and another claim owns the command now.
            tracing::warn!(id = %row.id, attempt = row.attempt, "finish fenced out");
            Settle::Ack
        }
        Some(rows) => {
            announce(&shared.broker, &rows).await;
            settle
        }
    }
}

/// Publishes the state change of each row. Best effort: a lost event is healed by resuming
/// from PostgreSQL.
pub(crate) async fn announce(broker: &Broker, rows: &[CommandRow]) {
    let events: Vec<_> = rows.iter().filter_map(|row| row.event().ok()).collect();
    broker.publish_events(&events).await;
}
