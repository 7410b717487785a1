//! Which connections the accept loop (`serve.rs`) lets in, and how long it keeps one that asks
//! for nothing. The connection cap is one pool for everyone; without a share per client
//! address, one host that keeps re-opening idle connections holds the whole pool and every
//! other client waits in the backlog. So each address holds at most its share of the pool (past
//! it, a new connection is answered `429 too_many_connections` and closed at once), and a
//! connection that has not authenticated is closed once it has been idle for the short
//! unauthenticated timeout (`Activity`), long before the header timeout that an authenticated
//! keep-alive connection gets between its requests.

use axum::http::{StatusCode, header};
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};
use tokio::time::Instant;

/// Open connections per client address.
#[derive(Debug, Clone)]
pub(crate) struct Addresses {
    /// Most connections one address holds (0: unlimited).
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection of an address; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

fn lock(held: &Mutex<HashMap<IpAddr, usize>>) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Addresses {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            held: Arc::default(),
        }
    }

    /// A connection of `address`, unless it holds its share already.
    pub(crate) fn take(&self, address: IpAddr) -> Option<AddressSlot> {
        let mut held = lock(&self.held);
        let count = held.entry(address).or_default();
        if self.max != 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            held: Arc::clone(&self.held),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.address);
            }
        }
    }
}

/// What one connection is doing, as its requests pass: whether one of them authenticated (it
/// carried a credential and was not answered `401` or `429`), how many are in flight, and when
/// the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    trusted: AtomicBool,
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// One request in flight; its end (or its abandonment) makes the connection idle again.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection accepted now, idle until its first request.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            trusted: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    /// A request starts.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Whether a request of this connection authenticated.
    pub(crate) fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// When an unauthenticated connection idle since its last request (or its accept) is to be
    /// closed, after `within`; `None` while a request is in flight or once one authenticated.
    pub(crate) fn close_at(&self, within: std::time::Duration) -> Option<Instant> {
        if self.trusted.load(Ordering::Acquire) || self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = *self
            .idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(idle_since + within)
    }
}

impl InFlight {
    /// The request was answered with `status`; `credential` says whether it carried one.
    pub(crate) fn answered(&self, credential: bool, status: StatusCode) {
        if credential
            && status != StatusCode::UNAUTHORIZED
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            self.0.trusted.store(true, Ordering::Release);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a request carries a credential (checked by the routes; here only noted): the
/// `Authorization` header, or the `access_token` that `GET /v1/events` takes in its query
/// (`EventSource` cannot send headers). A stream is answered before its body ends, so its
/// connection looks idle from then on: without counting its token, it would be closed as an
/// idle unauthenticated one.
pub(crate) fn carries_credential<B>(request: &axum::http::Request<B>) -> bool {
    request.headers().contains_key(header::AUTHORIZATION)
        || (request.uri().path() == "/v1/events"
            && request.uri().query().is_some_and(|query| {
                query
                    .split('&')
                    .any(|pair| pair.starts_with("access_token="))
            }))
}

/// The whole answer to a connection past its address's share: a problem+json `429` that closes
/// the connection. Written without waiting (a fresh socket's send buffer takes it whole).
pub(crate) fn too_many_connections() -> Vec<u8> {
    let problem = cmdbus_domain::Problem::new(
        429,
        "Too Many Requests",
        "too_many_connections",
        "this address holds its share of the server's connections; close one and retry",
    );
    let body = serde_json::to_string(&problem).unwrap_or_default();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        cmdbus_domain::PROBLEM_JSON,
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_its_share_and_gives_it_back() {
        let addresses = Addresses::new(2);
        let (one, two): (IpAddr, IpAddr) = (
            "127.0.0.2".parse().expect("address"),
            "127.0.0.3".parse().expect("address"),
        );
        let first = addresses.take(one).expect("free");
        let _second = addresses.take(one).expect("free");
        assert!(addresses.take(one).is_none());
        assert!(addresses.take(two).is_some());
        drop(first);
        assert!(addresses.take(one).is_some());
        assert!(Addresses::new(0).take(one).is_some());
        let answer = String::from_utf8(too_many_connections()).expect("text");
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.contains("\"code\":\"too_many_connections\""),
            "{answer}"
        );
    }
}
