//! What the service manager is told, when one asks (systemd's notify protocol: `Type=notify`
//! sets `NOTIFY_SOCKET`): `READY=1` once the process reaches what `/readyz` needs (PostgreSQL
//! and, for every role but the notifier, the broker), then `WATCHDOG=1` from the health loop
//! while the process runs, a `STATUS=` line whenever what it reaches changes, and `STOPPING=1`
//! when a graceful stop begins. Without `NOTIFY_SOCKET` nothing of this runs.
//!
//! The watchdog is fed whatever the dependencies say: cmdbus reconnects to them by itself, so a
//! restart would only cost the handlers under way. What it catches is a process whose runtime
//! no longer runs its tasks; a lost dependency shows in `STATUS=` and in `/readyz`.

use crate::health::{Health, Readiness};
use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the health loop looks while the process is not ready yet (it also looks at once
/// when a broker session comes up).
const WAITING_POLL: Duration = Duration::from_millis(250);

/// How often it looks once ready when no watchdog was asked for: status lines only.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Whether a service manager asked to be told (`NOTIFY_SOCKET` is set).
pub(crate) fn is_asked() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The health loop: tells the service manager when the process is ready, feeds its watchdog
/// (every half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)` advises) and says what it reaches,
/// until `closing`. `stopping` is the start of a graceful stop: before readiness, the process
/// is never declared ready; after it, `STOPPING=1` is sent and the watchdog fed on through the
/// drain.
pub(crate) async fn health_loop(
    health: Health,
    stopping: CancellationToken,
    closing: CancellationToken,
) {
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |timeout| timeout / 2);
    let mut sessions = health.watch_broker();
    let mut said = String::new();
    loop {
        let readiness = health.check().await;
        if stopping.is_cancelled() {
            tell(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
            return;
        }
        let status = describe(&health, &readiness);
        if health.is_ready(&readiness) {
            tell(&[NotifyState::Ready, NotifyState::Status(&status)]);
            tracing::info!(%status, "told the service manager: ready");
            said = status;
            break;
        }
        if status != said {
            tell(&[NotifyState::Status(&status)]);
            said = status;
        }
        tokio::select! {
            _ = stopping.cancelled() => {}
            Ok(()) = sessions.changed() => {}
            () = tokio::time::sleep(WAITING_POLL) => {}
        }
    }
    let mut stop_told = false;
    loop {
        tokio::select! {
            _ = closing.cancelled() => return,
            _ = stopping.cancelled(), if !stop_told => {
                stop_told = true;
                tell(&[NotifyState::Stopping]);
            }
            () = tokio::time::sleep(every) => {}
        }
        let readiness = health.check().await;
        let status = describe(&health, &readiness);
        let mut states = Vec::with_capacity(2);
        if watchdog.is_some() {
            states.push(NotifyState::Watchdog);
        }
        if status != said {
            states.push(NotifyState::Status(&status));
        }
        if !states.is_empty() {
            tell(&states);
        }
        said = status;
    }
}

/// The `STATUS=` line for `readiness`: what the process waits for, or that it is ready.
fn describe(health: &Health, readiness: &Readiness) -> String {
    if readiness.draining {
        "stopping: running handlers finish, clients are still served".to_owned()
    } else if !readiness.database {
        "waiting for PostgreSQL".to_owned()
    } else if !health.is_ready(readiness) {
        "waiting for the broker (PostgreSQL reached)".to_owned()
    } else if readiness.broker {
        "ready: PostgreSQL and the broker reached".to_owned()
    } else {
        "ready: PostgreSQL reached; the broker is away (pushes follow PostgreSQL)".to_owned()
    }
}

/// Sends `states` to the service manager; a failure is logged, never fatal (the manager may be
/// restarting, and the next tick tries again).
fn tell(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}
