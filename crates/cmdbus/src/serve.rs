//! The HTTP accept loop: hyper's HTTP/1 connections, with upgrades for WebSockets, each bounded
//! in time and all of them in number. `axum::serve` has neither bound: a client that opens sockets
//! and sends nothing holds a descriptor each, forever, until `accept` fails for everyone.
//!
//! - Time: hyper's header read timeout starts whenever a connection waits for a request head —
//!   on a fresh connection and again after each response — and is not reset by arriving bytes,
//!   so it cuts trickled headers and closes idle keep-alive connections alike. A write that makes
//!   no progress for the write timeout (a client that stopped reading) fails the connection.
//!   Bodies have their own deadline (`body.rs`).
//! - Number: each connection holds a slot of a semaphore for as long as its socket lives, through
//!   a WebSocket upgrade too. With no slot free the loop stops accepting, so new clients wait in
//!   the kernel's backlog instead of failing; the cap is lowered at startup to what the
//!   descriptor limit holds besides the database pool, the broker and files.
//! - Share: each client address holds at most its share of the slots, and a connection that has
//!   not authenticated is closed once idle for the unauthenticated timeout (`admission.rs`).
//! - Shutdown: stop accepting at once, let each connection finish its request in flight (idle
//!   ones close), and cut whatever is still open after the grace period.

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service as _;

use crate::admission::{
    Activity, AddressSlot, Addresses, carries_credential, too_many_connections,
};

/// Bounds of the serve loop.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Most connections one client address holds (0: unlimited).
    pub(crate) max_connections_per_address: usize,
    /// How long a connection that has not authenticated may stay idle (before its first
    /// request, or between requests).
    pub(crate) unauthenticated_within: Duration,
    /// How long connections get to finish after shutdown before they are cut.
    pub(crate) drain: Duration,
}

/// Pauses after an `accept` error such as EMFILE, doubling up to the maximum: retrying at once
/// would spin while the condition lasts.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How often reaching the connection cap is logged while it lasts.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, then drains (see the module comment).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let addresses = Addresses::new(limits.max_connections_per_address);
    let too_many = too_many_connections();
    let connections = TaskTracker::new();
    let cut = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let open = metrics::gauge!("cmdbus_http_connections");
    let mut backoff = MIN_BACKOFF;
    let mut warned_at: Option<Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::counter!("cmdbus_http_connection_cap_reached_total").increment(1);
                // Once in a while: at the cap, every accepted connection would say it again.
                if warned_at.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached; new connections wait in the backlog"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = MIN_BACKOFF;
                    accepted
                }
                // The client gave up before we took its connection: nothing is wrong here.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "cannot accept a connection; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let Some(address) = addresses.take(remote.ip()) else {
            metrics::counter!("cmdbus_http_address_share_reached_total").increment(1);
            // Answered and closed at once: the slot goes back, nothing waits on this client.
            let _ = stream.try_write(&too_many);
            continue;
        };
        // Small responses and WebSocket messages leave at once rather than after Nagle's delay.
        let _ = stream.set_nodelay(true);
        open.increment(1.0);
        let io = TokioIo::new(Guarded {
            stream,
            _slot: slot,
            _address: address,
            open: open.clone(),
            write_timeout: limits.write_timeout,
            stalled: None,
        });
        let app = app.clone();
        let activity = Activity::new();
        let in_service = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = in_service.start();
            let credential = carries_credential(&request);
            // What `axum::serve` would give handlers that ask for the peer's address.
            request.extensions_mut().insert(ConnectInfo(remote));
            let answer = app.clone().call(request);
            async move {
                let response = answer.await;
                if let Ok(response) = &response {
                    in_flight.answered(credential, response.status());
                }
                response
            }
        });
        let unauthenticated_within = limits.unauthenticated_within;
        let connection = http.serve_connection(io, service).with_upgrades();
        let (shutdown, cut) = (shutdown.clone(), cut.clone());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut draining = false;
            loop {
                // While a request is in flight, look again a timeout later.
                let trusted = activity.trusted();
                let look_at = activity
                    .close_at(unauthenticated_within)
                    .unwrap_or_else(|| Instant::now() + unauthenticated_within);
                tokio::select! {
                    // A connection that has not authenticated is closed once idle for the short
                    // timeout: holding idle connections would cost an attacker nothing else.
                    _ = tokio::time::sleep_until(look_at), if !trusted => {
                        if activity
                            .close_at(unauthenticated_within)
                            .is_some_and(|at| at <= Instant::now())
                        {
                            tracing::debug!(%remote, "idle and unauthenticated; closing");
                            break;
                        }
                    }
                    ended = connection.as_mut() => {
                        if let Err(error) = ended {
                            tracing::debug!(%error, %remote, "connection ended");
                        }
                        break;
                    }
                    // Finish the request in flight, then close; an idle connection closes now.
                    _ = shutdown.cancelled(), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    _ = cut.cancelled() => break,
                }
            }
        });
    }
    drop(listener); // new clients are refused rather than left waiting
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the grace period; closing them"
        );
        cut.cancel();
        connections.wait().await;
    }
}

/// Errors of one incoming connection rather than of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Descriptors kept for everything but client connections, besides the database pool: broker
/// connections, the listener, the runtime, log and migration files, and slack.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft descriptor limit to the hard one, and returns the connection cap that fits
/// under it: `configured`, or less when the limit cannot hold it plus `db_connections` and the
/// reserve (a connection past the limit would fail the database pool and the broker, not only
/// itself).
pub(crate) fn connection_cap(configured: usize, db_connections: u32) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the descriptor limit");
            return configured;
        }
    };
    let room = limit.saturating_sub(u64::from(db_connections) + RESERVED_DESCRIPTORS);
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if configured > room {
        tracing::warn!(
            configured,
            descriptor_limit = limit,
            max_connections = room,
            "the descriptor limit cannot hold CMDBUS_MAX_CONNECTIONS; lowering it"
        );
        room
    } else {
        configured
    }
}

/// A client's socket as hyper (and, after an upgrade, the WebSocket) uses it: it holds the
/// connection's slot until it is dropped, and a write that stays blocked for the write timeout
/// fails instead of holding the connection forever.
struct Guarded {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _address: AddressSlot,
    open: metrics::Gauge,
    write_timeout: Duration,
    /// Running while the latest write waits on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let write_timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write_timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_limit_below_the_cap_lowers_it() {
        let limit = rlimit::increase_nofile_limit(u64::MAX).expect("descriptor limit");
        let fits = usize::try_from(limit - 20 - RESERVED_DESCRIPTORS).expect("fits");
        assert_eq!(connection_cap(fits, 20), fits);
        assert_eq!(connection_cap(fits + 1, 20), fits);
        assert_eq!(connection_cap(usize::MAX, 20), fits);
        assert_eq!(connection_cap(10, 20), 10);
    }
}
