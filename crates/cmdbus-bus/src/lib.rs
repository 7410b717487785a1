//! The RabbitMQ bus: one long-lived connection per process, rebuilt from scratch by a supervisor
//! whenever it fails, a publisher that counts a message only on a confirm ack with nothing
//! returned, the fanout exchanges every process hears, and the topology every role relies on.
//!
//! # Layout
//!
//! - `lib.rs` (here): the errors, the settings, `Broker` (the process's handle: sessions, types
//!   to declare, queue depth, teardown) and `Session` (one live connection and its channels).
//! - `supervisor.rs`: the task `Broker::start` spawns; connects through `Broker::establish`,
//!   probes the session every second and rebuilds it when it ends.
//! - `topology.rs`: every exchange and queue, declared by `establish` and `ensure_types`.
//! - `publish.rs`: command messages on the confirm channel (`publish_commands`, `park`, ...),
//!   each with its command's trace context (`traceparent_of` reads it back).
//! - `fanout.rs`: the `events` and `control` fanouts: `publish_events`, `publish_control`, and
//!   `follow_fanout`, which the change feed (`cmdbus-feed`) and the worker's lease consume.
//!
//! The api and the worker publish; the feed and the worker follow the fanouts. Nothing here
//! knows about subscribers or cursors: that is `cmdbus-feed`.

mod fanout;
mod publish;
mod supervisor;
mod topology;

use cmdbus_domain::Names;
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
    uri::AMQPUri,
};
use std::{
    collections::BTreeSet,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use fanout::FanoutEvent;
pub use publish::{Outgoing, traceparent_of};
pub use topology::{DELAY_HEADER, QUORUM_DELIVERY_LIMIT, partition_key, routing_key};

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No connection to the broker right now.
    #[error("broker unavailable")]
    Unavailable,
    /// The broker refused the message (nack).
    #[error("broker did not accept the message")]
    Nacked,
    /// The message matched no queue and came back.
    #[error("message was unroutable")]
    Unroutable,
    /// No confirm came in time.
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The AMQP client failed.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// The AMQP URL does not parse.
    #[error("invalid amqp url: {0}")]
    Url(String),
    /// A message did not encode.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A queue's counts, from a passive declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages ready for delivery.
    pub ready: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// Broker settings.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `amqp://user:pass@host:port/vhost`, or several of them separated by commas (the nodes of
    /// a cluster): each connection goes to any node that answers, starting from a random one.
    /// A `heartbeat` of 10 s is added unless a URL names one.
    pub url: String,
    /// Names of every exchange and queue.
    pub names: Names,
    /// Shown in the management UI.
    pub connection_name: String,
    /// Ordered partitions per command type.
    pub partitions: u16,
    /// Kind of the durable command queues.
    pub queue_type: QueueType,
}

/// Kind of the durable command queues (fixed for a namespace: RabbitMQ cannot convert a queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Classic queues: priorities work; a queue lives on one node.
    #[default]
    Classic,
    /// Quorum queues: replicated (Raft) and safer across node loss; no priorities.
    Quorum,
}

/// A live connection with its publishing channels. Dropped (and so closed) when it fails.
#[derive(Debug)]
pub struct Session {
    connection: Connection,
    /// Confirm-mode channel for command messages: pipelined confirms, one per process.
    publisher: Channel,
    /// Plain channel for events: they are notifications, PostgreSQL holds the facts.
    events: Channel,
    /// Idle channel the supervisor asks a question on every second, to notice a broker that
    /// stopped answering (see `supervisor`).
    probe: Channel,
    /// Cancelled when an operation on this session failed, so the supervisor rebuilds it.
    broken: CancellationToken,
}

impl Session {
    /// Opens a new channel (consumers get their own, so that prefetch is theirs).
    pub async fn open_channel(&self) -> Result<Channel, BusError> {
        self.connection
            .create_channel()
            .await
            .map_err(|error| self.fail(error))
    }

    /// Tells the supervisor this session is no longer usable.
    pub fn mark_broken(&self) {
        self.broken.cancel();
    }

    /// Resolves when the session has failed or is being replaced.
    pub async fn closed(&self) {
        self.broken.cancelled().await
    }

    fn fail(&self, error: lapin::Error) -> BusError {
        self.mark_broken();
        BusError::Amqp(error)
    }
}

/// Handle to the process's broker connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BusConfig,
    /// The broker's nodes; a connection tries them in turn.
    uris: Vec<AMQPUri>,
    /// Where the next connection attempt starts in `uris`.
    next_uri: std::sync::atomic::AtomicUsize,
    session: watch::Sender<Option<Arc<Session>>>,
    /// Command types whose queues every new session declares.
    kinds: Mutex<BTreeSet<String>>,
}

impl Broker {
    /// Starts the supervisor, which connects (and reconnects, with backoff) until `shutdown`.
    pub fn start(
        config: BusConfig,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Self, BusError> {
        let uris = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let mut uri = AMQPUri::from_str(url).map_err(BusError::Url)?;
                // A dead broker must be noticed in seconds, not after the server's 60 s default.
                uri.query.heartbeat.get_or_insert(10);
                Ok(uri)
            })
            .collect::<Result<Vec<_>, BusError>>()?;
        if uris.is_empty() {
            return Err(BusError::Url("no broker URL given".to_owned()));
        }
        // Processes spread over the nodes instead of all starting with the first.
        let first = usize::try_from(supervisor::jitter_seed()).unwrap_or(0) % uris.len();
        let (session, _) = watch::channel(None);
        let broker = Self {
            inner: Arc::new(Inner {
                config,
                uris,
                next_uri: std::sync::atomic::AtomicUsize::new(first),
                session,
                kinds: Mutex::new(BTreeSet::new()),
            }),
        };
        tracker.spawn(supervisor::supervise(broker.clone(), shutdown));
        Ok(broker)
    }

    /// Names of every exchange and queue.
    pub fn names(&self) -> &Names {
        &self.inner.config.names
    }

    /// Ordered partitions per command type.
    pub fn partitions(&self) -> u16 {
        self.inner.config.partitions.max(1)
    }

    /// The live session, if connected.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.inner.session.borrow().clone()
    }

    /// Sees every new session (and `None` while disconnected).
    pub fn watch_sessions(&self) -> watch::Receiver<Option<Arc<Session>>> {
        self.inner.session.subscribe()
    }

    /// Whether a session is up.
    pub fn is_connected(&self) -> bool {
        self.inner.session.borrow().is_some()
    }

    /// Waits until connected, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut sessions = self.watch_sessions();
        tokio::time::timeout(timeout, sessions.wait_for(Option::is_some))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Makes sure the queues of these command types exist, now (when connected) and on every
    /// reconnect.
    pub async fn ensure_types(&self, kinds: &[String]) -> Result<(), BusError> {
        let added: Vec<String> = {
            let mut known = self.lock_kinds();
            kinds
                .iter()
                .filter(|kind| known.insert((*kind).clone()))
                .cloned()
                .collect()
        };
        if added.is_empty() {
            return Ok(());
        }
        let Some(session) = self.session() else {
            return Ok(()); // the next session declares them
        };
        for kind in &added {
            topology::declare_type(&session.connection, &self.inner.config, kind)
                .await
                .inspect_err(|_| session.mark_broken())?;
        }
        Ok(())
    }

    /// Messages ready in a queue (operators and tests).
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, BusError> {
        let session = self.session().ok_or(BusError::Unavailable)?;
        let channel = session.open_channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "done".into()).await;
        Ok(declared.message_count())
    }

    /// Ready messages and consumers of each queue, by passive declares on one channel; `None`
    /// for a queue that does not exist (a passive declare of a missing queue closes its
    /// channel: the next queue gets a fresh one). Unacked messages are not in AMQP's answer.
    pub async fn queue_stats(
        &self,
        queues: &[String],
    ) -> Result<Vec<Option<QueueStats>>, BusError> {
        let session = self.session().ok_or(BusError::Unavailable)?;
        let mut channel = session.open_channel().await?;
        let mut stats = Vec::with_capacity(queues.len());
        for queue in queues {
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(declared) => stats.push(Some(QueueStats {
                    ready: declared.message_count(),
                    consumers: declared.consumer_count(),
                })),
                Err(error) if !session.connection.status().connected() => {
                    return Err(error.into());
                }
                Err(_) => {
                    // `404 NOT_FOUND` closed the channel: the queue is missing.
                    stats.push(None);
                    channel = session.open_channel().await?;
                }
            }
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(stats)
    }

    /// Deletes every exchange and queue of this namespace, with the queues of `kinds` (tests and
    /// teardown).
    pub async fn delete_topology(&self, kinds: &[String]) -> Result<(), BusError> {
        let session = self.session().ok_or(BusError::Unavailable)?;
        let channel = session.open_channel().await?;
        topology::delete_all(&channel, self.names(), kinds, self.partitions()).await
    }

    fn lock_kinds(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic while holding this lock cannot leave the set half-changed.
        self.inner
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn establish(&self) -> Result<Session, BusError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.inner.config.connection_name.clone().into());
        let connection = self.connect_any(properties).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare_core(&publisher, &self.inner.config).await?;
        let kinds: Vec<String> = self.lock_kinds().iter().cloned().collect();
        for kind in &kinds {
            topology::declare_type(&connection, &self.inner.config, kind).await?;
        }
        let events = connection.create_channel().await?;
        let probe = connection.create_channel().await?;
        Ok(Session {
            connection,
            publisher,
            events,
            probe,
            broken: CancellationToken::new(),
        })
    }
}

/// How long one node gets to complete a connection's handshake.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Broker {
    /// Connects to the first node that answers, starting where the last attempt left off: after
    /// a session fails, the node it was on is tried last.
    async fn connect_any(&self, properties: ConnectionProperties) -> Result<Connection, BusError> {
        use std::sync::atomic::Ordering;
        let uris = &self.inner.uris;
        let mut last_error = None;
        for _ in 0..uris.len() {
            let index = self.inner.next_uri.fetch_add(1, Ordering::Relaxed) % uris.len();
            let uri = &uris[index];
            // A node that hangs still accepts TCP connections and then says nothing: give it
            // up and try the next one.
            let connect = Connection::connect_uri(uri.clone(), properties.clone());
            let connected = tokio::time::timeout(NODE_CONNECT_TIMEOUT, connect)
                .await
                .unwrap_or_else(|_| {
                    Err(lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer to the AMQP handshake",
                    )))
                });
            match connected {
                Ok(connection) => {
                    // When this session fails, the next attempt starts with another node.
                    self.inner.next_uri.store(index + 1, Ordering::Relaxed);
                    tracing::info!(host = %uri.authority.host, port = uri.authority.port, "broker node");
                    return Ok(connection);
                }
                Err(error) => {
                    tracing::warn!(%error, host = %uri.authority.host, port = uri.authority.port, "broker node unreachable");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.map_or(BusError::Unavailable, BusError::Amqp))
    }
}
