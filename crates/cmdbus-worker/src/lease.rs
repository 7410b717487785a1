//! Leases of the commands this worker runs. One loop renews them all in one statement every third
//! of the lease, and tells each handler when its command was cancelled or its lease was lost.

use cmdbus_bus::{Broker, FanoutEvent};
use cmdbus_domain::Control;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Shared;

/// What the worker knows about one running attempt.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    /// Handed to the handler as its cancellation.
    pub(crate) cancel: CancellationToken,
    /// A cancel was requested through the api.
    pub(crate) cancel_requested: AtomicBool,
    /// Another worker may own the command now: our finish will be fenced out.
    pub(crate) lost: AtomicBool,
}

/// The attempts this worker runs right now.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    leases: Mutex<HashMap<Uuid, Arc<Lease>>>,
}

impl Inflight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Lease>>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, id: Uuid) -> Arc<Lease> {
        let lease = Arc::new(Lease::default());
        self.lock().insert(id, Arc::clone(&lease));
        lease
    }

    pub(crate) fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A cancel was requested for `id`: if it runs here, its handler is told now.
    pub(crate) fn request_cancel(&self, id: Uuid) {
        if let Some(lease) = self.lock().get(&id) {
            lease.cancel_requested.store(true, Ordering::SeqCst);
            lease.cancel.cancel();
        }
    }

    /// Fires every handler's cancellation (hard shutdown).
    pub(crate) fn cancel_all(&self) {
        for lease in self.lock().values() {
            lease.cancel.cancel();
        }
    }

    fn snapshot(&self) -> Vec<(Uuid, Arc<Lease>)> {
        self.lock()
            .iter()
            .map(|(id, lease)| (*id, Arc::clone(lease)))
            .collect()
    }
}

/// Renews every lease until `stop`.
pub(crate) async fn renew_loop(
    shared: Arc<Shared>,
    inflight: Arc<Inflight>,
    stop: CancellationToken,
) {
    let interval = shared.lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let leases = inflight.snapshot();
        if leases.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = leases.iter().map(|(id, _)| *id).collect();
        let renewed =
            match cmdbus_store::heartbeat(&shared.pool, &shared.worker, &ids, shared.lease).await {
                Ok(renewed) => renewed,
                Err(error) => {
                    // Not fatal yet: the lease outlives a few missed renewals.
                    tracing::warn!(%error, "cannot renew leases");
                    continue;
                }
            };
        let renewed: HashMap<Uuid, bool> = renewed.into_iter().collect();
        for (id, lease) in leases {
            match renewed.get(&id) {
                None => {
                    lease.lost.store(true, Ordering::SeqCst);
                    lease.cancel.cancel();
                    tracing::warn!(%id, "lease lost");
                }
                Some(true) => {
                    lease.cancel_requested.store(true, Ordering::SeqCst);
                    lease.cancel.cancel();
                }
                Some(false) => {}
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
                    Ok(Control::Cancel { id }) => inflight.request_cancel(id),
                    Err(error) => tracing::warn!(%error, "undecodable control message"),
                }
            }
        })
        .await;
}
