//! Leases of the runs this worker holds, keyed by claim token. One loop renews them all in one
//! statement every third of the lease, and a lease that could not be renewed in time is lost
//! here first: the handler's cancellation fires at the lease's local deadline ("lease lost"),
//! whether the database said no, did not answer, or this process was paused. Every lease also
//! ends when the worker's heartbeat row goes stale (`Inflight::seen`), when the api may release
//! the worker's runs.

use cmdbus_bus::{Broker, FanoutEvent};
use cmdbus_domain::Control;
use cmdbus_store::Run;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::shared::Shared;

/// What the worker knows about one run.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The command and the claim token.
    pub(crate) run: Run,
    /// The generation it runs.
    pub(crate) generation: i32,
    /// Handed to the handler as its cancellation.
    pub(crate) cancel: CancellationToken,
    /// A cancel was requested through the api.
    cancel_requested: AtomicBool,
    /// The lease ran out (or another run owns the command): our writes will be fenced out.
    lost: AtomicBool,
    /// When the lease ends unless renewed, by this process's clock: measured from when each
    /// renewal was *sent*, so it never outlasts the lease the database granted.
    deadline: Mutex<Instant>,
}

impl Lease {
    /// A run whose claim was sent at `sent`.
    pub(crate) fn new(run: Run, generation: i32, sent: Instant, lease: Duration) -> Self {
        Self {
            run,
            generation,
            cancel: CancellationToken::new(),
            cancel_requested: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            deadline: Mutex::new(sent + lease),
        }
    }

    fn deadline(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.deadline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database renewed the lease by a request sent at `sent`.
    pub(crate) fn renewed(&self, sent: Instant, lease: Duration) {
        let mut deadline = self.deadline();
        *deadline = (*deadline).max(sent + lease);
    }

    /// The lease is gone: stop the handler.
    pub(crate) fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            tracing::warn!(id = %self.run.id, claim = %self.run.claim, why, "lease lost");
            metrics::counter!("cmdbus_leases_lost_total").increment(1);
        }
        self.cancel.cancel();
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A cancel was requested: stop the handler.
    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }
}

/// The runs this worker holds right now.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    leases: Mutex<HashMap<Uuid, Arc<Lease>>>,
    /// When every lease ends unless the worker's heartbeat row is written again (`presence.rs`):
    /// the api releases a silent worker's runs, so the worker stops them first. `None` until the
    /// row is first written (a worker without a row is never released).
    presence: Mutex<Option<Instant>>,
    /// A run was added: its deadline may be earlier than the one the renewal loop sleeps to
    /// (the worker's heartbeat row bounds it, and that is seconds away, not a lease).
    added: tokio::sync::Notify,
}

impl Inflight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Lease>>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, lease: Arc<Lease>) {
        self.lock().insert(lease.run.claim, lease);
        self.added.notify_one();
    }

    /// Forgets a run, by its claim token: a later run of the same command is another entry.
    pub(crate) fn remove(&self, claim: Uuid) {
        self.lock().remove(&claim);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A cancel was requested for this generation of `id`: if it runs here, its handler is
    /// told now.
    pub(crate) fn request_cancel(&self, id: Uuid, generation: i32) {
        for lease in self.lock().values() {
            if lease.run.id == id && lease.generation == generation {
                lease.request_cancel();
            }
        }
    }

    /// Fires every handler's cancellation (hard shutdown).
    pub(crate) fn cancel_all(&self) {
        for lease in self.lock().values() {
            lease.cancel.cancel();
        }
    }

    /// The worker's heartbeat row was written by a request sent at `sent`: its runs are not
    /// released before `sent + dead_after`.
    pub(crate) fn seen(&self, sent: Instant, dead_after: Duration) {
        let mut presence = self
            .presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *presence = Some(presence.map_or(sent + dead_after, |at| at.max(sent + dead_after)));
    }

    fn presence(&self) -> Option<Instant> {
        *self
            .presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The runs whose lease still holds.
    fn live(&self) -> Vec<Arc<Lease>> {
        self.lock()
            .values()
            .filter(|lease| !lease.is_lost())
            .cloned()
            .collect()
    }

    /// Loses every lease past its deadline; returns the earliest deadline still ahead.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let presence = self.presence();
        for lease in self.live() {
            let own = *lease.deadline();
            let deadline = presence.map_or(own, |presence| own.min(presence));
            if deadline <= now {
                lease.lose(if deadline < own {
                    "the worker's heartbeat row was not written in time"
                } else {
                    "not renewed before it expired"
                });
            } else {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        earliest
    }
}

/// Renews every lease until `stop`, and loses each at its deadline when renewing fails.
pub(crate) async fn renew_loop(
    shared: Arc<Shared>,
    inflight: Arc<Inflight>,
    stop: CancellationToken,
) {
    let interval = shared.lease / 3;
    let mut renew_at = Instant::now() + interval;
    loop {
        let wake = inflight
            .expire(Instant::now())
            .map_or(renew_at, |deadline| deadline.min(renew_at));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
            _ = inflight.added.notified() => {}
        }
        if Instant::now() < renew_at {
            continue; // woken for a deadline or a new run: `expire` at the top handles it
        }
        renew_at = Instant::now() + interval;
        let leases = inflight.live();
        if leases.is_empty() {
            continue;
        }
        let runs: Vec<Run> = leases.iter().map(|lease| lease.run).collect();
        let sent = Instant::now();
        // Bounded, so that a database that does not answer cannot hold deadlines back.
        let renewed = tokio::time::timeout(
            interval,
            cmdbus_store::heartbeat(&shared.pool, &runs, shared.lease),
        )
        .await;
        let renewed: HashMap<Uuid, (bool, bool)> = match renewed {
            Ok(Ok(renewed)) => renewed
                .into_iter()
                .map(|(claim, cancel_requested, renewed)| (claim, (cancel_requested, renewed)))
                .collect(),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot renew leases");
                continue;
            }
            Err(_) => {
                tracing::warn!("renewing leases timed out");
                continue;
            }
        };
        for lease in leases {
            match renewed.get(&lease.run.claim) {
                None => lease.lose("the claim is no longer ours"),
                Some((cancel_requested, renewed)) => {
                    // Not renewed: its own handler holds the row (`hold_claim`); the lease
                    // stands as last renewed, and the next tick tries again.
                    if *renewed {
                        lease.renewed(sent, shared.lease);
                    }
                    if *cancel_requested {
                        lease.request_cancel();
                    }
                }
            }
        }
    }
}

/// Listens on the control fanout, so that a cancel reaches the handler within moments instead of
/// at the next renewal.
pub(crate) async fn listen_control(
    broker: Broker,
    inflight: Arc<Inflight>,
    stop: CancellationToken,
) {
    let exchange = broker.names().control_exchange();
    broker
        .follow_fanout(&exchange, &stop, |event| {
            if let FanoutEvent::Message(data) = event {
                match serde_json::from_slice::<Control>(data) {
                    Ok(Control::Cancel { id, generation }) => {
                        inflight.request_cancel(id, generation);
                    }
                    Err(error) => tracing::warn!(%error, "undecodable control message"),
                }
            }
        })
        .await;
}
