//! Revocation reaches live sockets through one task per process, not through every socket: the
//! task checks each key that this process's sockets rest on once a second (through the key
//! cache) and tells the sockets of a key that no longer holds, which close with 4401. An idle
//! socket is never woken for it; 10,000 sockets each checking their own key would wake 10,000
//! times a second.

use cmdbus_auth::{AuthError, Authenticator};
use futures_util::{StreamExt, stream};
use std::time::Duration;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::close::Refused;

/// How often the keys that live sockets rest on are checked for revocation.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Keys checked at once (the authenticator bounds its database lookups too).
const CHECKS_AT_ONCE: usize = 4;

/// Why the sockets of a key end, once they must; `None` while it holds.
pub(crate) type KeyEnd = watch::Receiver<Option<Refused>>;

/// The keys this process's sockets rest on; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyWatch {
    keys: Arc<Mutex<HashMap<Uuid, watch::Sender<Option<Refused>>>>>,
}

impl KeyWatch {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<Option<Refused>>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `key` for a socket: the answer says when the socket must end, and why. The key
    /// is forgotten once no socket watches it.
    pub(crate) fn watch(&self, key: Uuid) -> KeyEnd {
        self.lock()
            .entry(key)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Checks every key in use once, and ends the sockets of each that no longer holds
    /// (revoked; or unverifiable now, as a socket's own check did: the client reconnects).
    async fn check(&self, auth: &Authenticator) {
        let keys: Vec<Uuid> = {
            let mut keys = self.lock();
            keys.retain(|_, end| !end.is_closed());
            keys.keys().copied().collect()
        };
        stream::iter(keys)
            .for_each_concurrent(CHECKS_AT_ONCE, |key| async move {
                let end = match auth.key_live(key).await {
                    Ok(true) => return,
                    Ok(false) => Refused::from(AuthError::Unauthorized("API key revoked")),
                    Err(error) => Refused::from(error),
                };
                // Removed, so that a socket of the key accepted later starts afresh.
                if let Some(sender) = self.lock().remove(&key) {
                    sender.send_replace(Some(end));
                }
            })
            .await;
    }

    /// Checks the keys of this process's sockets every `RECHECK_EVERY` until `shutdown`.
    pub(crate) async fn run(self, auth: Authenticator, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(RECHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => self.check(&auth).await,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_watched_while_a_socket_watches_it() {
        let keys = KeyWatch::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = keys.watch(a);
        let second = keys.watch(a);
        let other = keys.watch(b);
        assert_eq!(keys.len(), 2);
        drop((first, second));
        keys.lock().retain(|_, end| !end.is_closed());
        assert_eq!(keys.len(), 1, "forgotten once no socket watches it");
        assert!(other.borrow().is_none());
    }
}
