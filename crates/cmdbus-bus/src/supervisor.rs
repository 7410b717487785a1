//! The supervisor of a process's broker session: connects (to any node of the list), publishes
//! the session, watches it — connection errors, a failed operation, and a question asked every
//! second that a node which hangs or is cut off never answers — and rebuilds it from scratch,
//! with backoff, when it ends.

use futures_util::StreamExt;
use lapin::{Channel, Event, options::BasicQosOptions};
use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio_util::sync::CancellationToken;

use crate::{Broker, BusError};

/// How often the supervisor asks the broker a question on the session's probe channel.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long an answer may take. A node that crashed closes its connections at once, but one
/// that hangs or is cut off keeps them open and silent: the AMQP heartbeat only gives up after
/// twice its interval (20 s by default), while a quorum queue elects a new leader elsewhere in
/// a second or two. Any broker answers a `basic.qos` in milliseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A second, short chance after a missed deadline: this process itself may have been paused
/// (SIGSTOP, a long GC pause of the host) with the answer waiting to be read.
const PROBE_RECHECK: Duration = Duration::from_millis(500);

/// Why a session whose node stopped answering ended.
const UNANSWERED: &str = "the broker node stopped answering";

/// Whether the broker answers a question on `probe` in time (a `basic.qos` on a channel that
/// consumes nothing changes nothing).
async fn answers(probe: &Channel) -> bool {
    let ask = || probe.basic_qos(0, BasicQosOptions::default());
    match tokio::time::timeout(PROBE_TIMEOUT, ask()).await {
        Ok(answer) => answer.is_ok(),
        Err(_) => matches!(tokio::time::timeout(PROBE_RECHECK, ask()).await, Ok(Ok(()))),
    }
}

/// Keeps one session alive: connect, publish it, wait for it to fail, withdraw it, back off,
/// connect again. Rebuilding from scratch is simpler to reason about than recovering channels
/// and consumers in place, and consumers re-consume when they see the new session.
pub(crate) async fn supervise(broker: Broker, shutdown: CancellationToken) {
    const MIN_DELAY: Duration = Duration::from_millis(100);
    const MAX_DELAY: Duration = Duration::from_secs(5);
    // A node that accepts connections while it is still recovering can leave a handshake or a
    // declare unanswered for good: an attempt that takes this long is given up and made again,
    // and shutdown never waits on one.
    const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
    let mut delay = MIN_DELAY;
    while !shutdown.is_cancelled() {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => break,
            attempt = tokio::time::timeout(ESTABLISH_TIMEOUT, broker.establish()) => attempt,
        };
        let established = attempt.unwrap_or(Err(BusError::Timeout));
        match established {
            Ok(session) => {
                delay = MIN_DELAY;
                let session = Arc::new(session);
                tracing::info!("connected to the broker");
                metrics::counter!("cmdbus_broker_sessions_total").increment(1);
                metrics::gauge!("cmdbus_broker_connected").set(1.0);
                let mut events = session.connection.events_listener();
                broker.inner.session.send_replace(Some(session.clone()));
                let reason = 'session: loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break "shutdown".to_owned(),
                        _ = session.broken.cancelled() => break "an operation failed".to_owned(),
                        event = events.next() => match event {
                            // A channel-level error (a consumer timed out, a failed declare)
                            // closes that channel only; its owner opens another.
                            Some(Event::Error(error)) if error.is_amqp_soft_error() => {
                                tracing::warn!(%error, "a channel was closed by the broker");
                            }
                            Some(Event::Error(error)) => break error.to_string(),
                            None => break "connection closed".to_owned(),
                            Some(_) => {}
                        },
                        _ = tokio::time::sleep(PROBE_EVERY) => {
                            if !session.connection.status().connected() {
                                break "connection lost".to_owned();
                            }
                            tokio::select! {
                                _ = shutdown.cancelled() => break 'session "shutdown".to_owned(),
                                _ = session.broken.cancelled() => {
                                    break 'session "an operation failed".to_owned();
                                }
                                answered = answers(&session.probe) => if !answered {
                                    metrics::counter!("cmdbus_broker_unanswered_probes_total")
                                        .increment(1);
                                    break 'session UNANSWERED.to_owned();
                                },
                            }
                        }
                    }
                };
                broker.inner.session.send_replace(None);
                metrics::gauge!("cmdbus_broker_connected").set(0.0);
                session.mark_broken();
                if shutdown.is_cancelled() {
                    let close = session.connection.close(200, "shutdown".into());
                    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
                    break;
                }
                if reason == UNANSWERED {
                    // Its connection would linger until the heartbeat gives up on it.
                    let abandoned = session.clone();
                    tokio::spawn(async move {
                        let close = abandoned.connection.close(320, "replaced".into());
                        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
                    });
                }
                tracing::warn!(%reason, "broker session ended; reconnecting");
            }
            Err(error) => tracing::warn!(%error, ?delay, "cannot connect to the broker"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(jitter(delay)) => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// 50–100 % of `delay`, so that many processes do not reconnect in lockstep.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + f64::from(jitter_seed() % 1000) / 2000.0)
}

/// A number that differs between processes and moments (the clock's nanoseconds and the pid).
pub(crate) fn jitter_seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}
