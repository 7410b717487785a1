//! The life of one delivery: claim → run → finish in PostgreSQL → publish the event → settle.
//! The claim decides whether there is work at all; everything after it is fenced by the run's
//! claim token; the message is settled last, so a crash anywhere before leaves a message the
//! broker delivers again (and the api's sweeps republish whatever a lost message leaves behind).

use cmdbus_bus::Broker;
use cmdbus_domain::{CommandMessage, ErrorInfo, Lane, Status};
use cmdbus_store::{Claim, Claimed, CommandRow, Finish, Outcome, Refusal, Run};
use lapin::message::Delivery;
use serde_json::Value;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;
use tracing::{Instrument as _, Span};

use crate::{
    batch::Batches,
    context::Context,
    executor::HandlerRuntime,
    handler::{HandlerError, Registry},
    lease::{Inflight, Lease},
    settle::{Settle, UNKNOWN_TRIES_HEADER, backoff_tier, unknown_tries},
    shared::Shared,
    steps,
};

/// What the life of a delivery needs, handed over by the loop that built it (one for all of the
/// loop's deliveries): the pieces are called from here, never the loop.
pub(crate) struct Runner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: Registry,
    pub(crate) inflight: Arc<Inflight>,
    pub(crate) lane: Lane,
    pub(crate) batches: Batches,
    /// Where handlers run: never on the threads that renew leases.
    pub(crate) handlers: HandlerRuntime,
}

/// A message for a command that is not (yet) in the database waits this long, this many times,
/// before it is dropped: after a failover to a standby that lost a committed insert, the row may
/// be gone for good, but a replica that lags catches up within this.
const UNKNOWN_WAIT_MS: u32 = 5_000;
const UNKNOWN_TRIES: u32 = 12;

/// How long a delivery that could not be claimed because an earlier command of its ordering key
/// is unfinished waits before it asks again.
const ORDER_WAIT_MS: u32 = 1_000;

/// Claims, runs and finishes the command of `delivery`; says how to settle the message, and in
/// which step's span (the settling is part of that step).
pub(crate) async fn handle(runtime: &Runner, delivery: &Delivery) -> (Settle, Span) {
    let message = match serde_json::from_slice::<CommandMessage>(&delivery.data) {
        Ok(message) => message,
        Err(error) => {
            tracing::error!(%error, "undecodable message; dead-lettering it to its lane");
            metrics::counter!("cmdbus_deliveries_skipped_total", "reason" => "undecodable")
                .increment(1);
            return (Settle::DeadLetter, Span::none());
        }
    };
    let sent_in = cmdbus_bus::traceparent_of(&delivery.properties);
    let claim_span = steps::claim(message.id, sent_in.as_ref());
    let sent = Instant::now();
    let row = match claim(runtime, delivery, message)
        .instrument(claim_span.clone())
        .await
    {
        Ok(row) => row,
        Err(settle) => return (settle, claim_span),
    };
    steps::claimed(&claim_span, &row);
    // Entered, not named as the parent: a JSON line lists the spans entered (`spans`).
    claim_span.in_scope(|| tracing::debug!("claimed"));
    drop(claim_span);
    // The row's context first: a message published before messages carried one has none.
    let parent = row.trace_parent().or(sent_in);
    let run_span = steps::handle(&row, parent.as_ref());
    let Some(token) = row.claim else {
        run_span.in_scope(|| tracing::error!("claimed row without a claim token"));
        return (Settle::Requeue, run_span);
    };
    let lease = Arc::new(Lease::new(
        Run {
            id: row.id,
            claim: token,
        },
        row.generation,
        sent,
        runtime.shared.lease,
    ));
    runtime.inflight.insert(Arc::clone(&lease));
    let started = std::time::Instant::now();
    let outcome = run_handler(runtime, &row, &lease, &run_span)
        .instrument(run_span.clone())
        .await;
    drop(run_span);
    let name = outcome.as_ref().map_or("lease_lost", Outcome::name);
    let labels = [("type", row.kind.clone()), ("outcome", name.to_owned())];
    metrics::histogram!("cmdbus_handler_seconds", &labels).record(started.elapsed());
    metrics::counter!("cmdbus_attempts_total", &labels).increment(1);
    let finish_span = steps::finish(&row, parent.as_ref());
    let settle = match outcome {
        Some(outcome) => {
            finish(runtime, &row, &lease, outcome)
                .instrument(finish_span.clone())
                .await
        }
        // The run lost its lease: the reaper ends it and publishes the command again.
        None => Settle::Ack,
    };
    runtime.inflight.remove(token);
    runtime
        .shared
        .last_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&row.id);
    (settle, finish_span)
}

/// Claims the command of `message`: its row, or how to settle a delivery that claimed nothing.
async fn claim(
    runtime: &Runner,
    delivery: &Delivery,
    message: CommandMessage,
) -> Result<CommandRow, Settle> {
    let claim = Claim {
        id: message.id,
        generation: message.generation,
    };
    match runtime.batches.claim(claim).await {
        Ok(Some(Claimed::Run(row))) => Ok(*row),
        Ok(Some(Claimed::Refused(why))) => Err(refused(delivery, message, why)),
        Ok(None) => {
            tracing::warn!(id = %message.id, "claimed nothing, and cannot say why; requeueing");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(Settle::Requeue)
        }
        Err(error) => {
            tracing::warn!(%error, id = %message.id, "cannot claim; requeueing");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(Settle::Requeue)
        }
    }
}

/// A delivery that claimed nothing: the claim said why, and so whether this copy is still
/// needed.
fn refused(delivery: &Delivery, message: CommandMessage, why: Refusal) -> Settle {
    let skipped = |reason: &'static str| {
        metrics::counter!("cmdbus_deliveries_skipped_total", "reason" => reason).increment(1);
    };
    match why {
        Refusal::Unknown => {
            let tries = unknown_tries(delivery);
            if tries < UNKNOWN_TRIES && !older_than_the_wait(message.id) {
                tracing::debug!(id = %message.id, tries, "message for an unknown command; waiting");
                skipped("unknown_waiting");
                return Settle::Delay {
                    delay_ms: UNKNOWN_WAIT_MS,
                    tries: Some(tries + 1),
                };
            }
            tracing::warn!(id = %message.id, header = UNKNOWN_TRIES_HEADER, "message for an unknown command; dropping it");
            skipped("unknown");
            Settle::Ack
        }
        Refusal::Held => {
            // Held in PostgreSQL: the key's hand-on publishes it again when its turn comes.
            skipped("held");
            Settle::Ack
        }
        Refusal::WaitingForPredecessor => {
            // A lane's delivery (or one the store could not hold): ask again shortly, without
            // holding a handler slot.
            skipped("ordered");
            Settle::Delay {
                delay_ms: ORDER_WAIT_MS,
                tries: None,
            }
        }
        // This copy is not needed. (The metric keeps counting a used-up budget as a duplicate,
        // as it always has.)
        Refusal::Duplicate | Refusal::Exhausted => {
            skipped("duplicate");
            Settle::Ack
        }
    }
}

/// Whether the command `id` names was created (its UUIDv7 time) longer ago than a message for an
/// unknown command waits in all: a row lost in a failover reappears within that, so one this old
/// is gone for good — purged by retention, most often, while a stale copy of its message was
/// still on its way — and its message is dropped at once rather than cycled for a minute.
fn older_than_the_wait(id: uuid::Uuid) -> bool {
    let Some((secs, _)) = id.get_timestamp().map(|at| at.to_unix()) else {
        return false; // not a UUIDv7: its age is unknown, so it waits
    };
    let created = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    let wait = Duration::from_millis(u64::from(UNKNOWN_WAIT_MS * UNKNOWN_TRIES));
    std::time::SystemTime::now()
        .duration_since(created)
        .is_ok_and(|age| age > wait)
}

/// Runs the handler (in `span`: a handler's own log lines carry the command's fields); `None`
/// when the run lost its lease before the handler gave a verdict.
async fn run_handler(
    runtime: &Runner,
    row: &CommandRow,
    lease: &Arc<Lease>,
    span: &Span,
) -> Option<Outcome> {
    let ctx = Context {
        kind: row.kind.clone(),
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        lease: Arc::clone(lease),
        shared: Arc::clone(&runtime.shared),
    };
    let result = match serde_json::from_str::<Value>(row.payload.get()) {
        Err(error) => Err(HandlerError::permanent(
            "invalid_payload",
            format!("the stored payload does not parse: {error}"),
        )),
        Ok(payload) => match runtime.registry.call(&row.kind, ctx, payload) {
            // Its own task, so that a panicking handler fails its command, not the worker; on
            // the handlers' runtime, so that a handler that blocks delays no heartbeat.
            Some(future) => match runtime
                .handlers
                .spawn(future.instrument(span.clone()))
                .await
            {
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
        },
    };
    Some(match result {
        // A result is worth recording whatever happened to the lease: the finish is fenced.
        Ok(value) => match cmdbus_store::find_nul(&value) {
            None => Outcome::Success(value),
            Some(path) => Outcome::Fail(unstorable(format!(
                "the result holds a NUL character at {path}, which PostgreSQL cannot store"
            ))),
        },
        Err(_) if lease.is_lost() => return None,
        Err(_) if lease.cancel_requested() => Outcome::Cancelled,
        Err(_) if lease.cancel.is_cancelled() => Outcome::Released, // shutdown past its grace
        Err(error) if error.retryable && row.has_attempts_left() => Outcome::Retry(
            error.info(),
            Duration::from_millis(u64::from(backoff_tier(row.spent_attempts()))),
        ),
        Err(error) => Outcome::Fail(error.info()),
    })
}

fn unstorable(message: String) -> ErrorInfo {
    ErrorInfo {
        code: "unstorable_result".to_owned(),
        message,
        retryable: false,
    }
}

/// Records the end of the run (retrying while the database is away and the lease lasts),
/// publishes the event, and says how to settle the message. An outcome the database refuses
/// (a result it cannot store) is recorded as a failure instead: never a loop.
async fn finish(runtime: &Runner, row: &CommandRow, lease: &Lease, outcome: Outcome) -> Settle {
    let parked_in = runtime.lane.parked_in();
    let mut request = Finish {
        id: row.id,
        claim: lease.run.claim,
        lane: parked_in.suffix().map(str::to_owned),
        outcome,
    };
    let mut delay = Duration::from_millis(100);
    loop {
        match runtime.batches.finish(request.clone()).await {
            Ok(None) => {
                // Fenced out: the lease was lost and the command moved on without us.
                tracing::warn!(id = %row.id, attempt = row.attempt, "finish fenced out");
                return Settle::Ack;
            }
            Ok(Some(finished)) => {
                tracing::debug!(status = finished.status.as_str(), "finished");
                return settle_for(&runtime.shared.broker, &finished, &request.outcome);
            }
            Err(error) if error.is_permanent() && !is_unstorable(&request.outcome) => {
                tracing::warn!(%error, id = %row.id, "the outcome cannot be stored; failing the command");
                request.outcome = Outcome::Fail(unstorable(format!(
                    "the outcome could not be stored: {error}"
                )));
            }
            Err(error)
                if lease.is_lost() || is_unstorable(&request.outcome) && error.is_permanent() =>
            {
                tracing::warn!(%error, id = %row.id, "cannot record the outcome; the reaper takes over");
                return Settle::Ack;
            }
            Err(error) => {
                tracing::warn!(%error, id = %row.id, "cannot record the outcome; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn is_unstorable(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Fail(error) if error.code == "unstorable_result")
}

/// How to settle the message, from what the database made of the run. A failure is parked in
/// the lane its row says (the lane `finish` recorded).
fn settle_for(broker: &Broker, finished: &CommandRow, outcome: &Outcome) -> Settle {
    match (finished.status, outcome) {
        (Status::Fail, _) => Settle::Park(broker.outgoing(finished.routing())),
        (Status::Queue, Outcome::Retry(_, delay)) => Settle::Delay {
            delay_ms: u32::try_from(delay.as_millis()).unwrap_or(u32::MAX),
            tries: None,
        },
        (Status::Queue, _) => Settle::Requeue,
        _ => Settle::Ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::{Timestamp, Uuid};

    fn created_secs_ago(secs: u64) -> Uuid {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        Uuid::new_v7(Timestamp::from_unix_time(now.as_secs() - secs, 0, 0, 0))
    }

    #[test]
    fn only_a_command_older_than_the_whole_wait_is_given_up_at_once() {
        assert!(!older_than_the_wait(Uuid::now_v7()));
        assert!(!older_than_the_wait(created_secs_ago(30)));
        assert!(older_than_the_wait(created_secs_ago(61)));
        assert!(older_than_the_wait(created_secs_ago(600)));
        let v4 = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
        assert!(!older_than_the_wait(v4), "no time in it: it waits");
    }
}
