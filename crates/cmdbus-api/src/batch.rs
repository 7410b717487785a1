//! Group commit of the submit path: requests that arrive together share one insert transaction,
//! and one burst of pipelined confirms followed by one `queue` update. Nothing waits for a batch
//! to fill: a loop takes whatever is queued the moment it is free, so one request alone goes
//! through at once and a burst goes through in a few statements instead of one per request.

use cmdbus_bus::Broker;
use cmdbus_store::Db;
use cmdbus_store::{CommandRow, NewCommand, StoreError, Submitted};
use std::{sync::Arc, time::Duration};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::dispatch::dispatch;

/// Most commands one statement carries.
const MAX_BATCH: usize = 256;
/// Batches in flight at once per kind: one fills while the other commits.
const LOOPS: usize = 2;

type Reply<T> = oneshot::Sender<T>;
/// A submit waiting for its insert.
type Insert = (NewCommand, Reply<Result<Submitted, StoreError>>);
/// A fresh row waiting for its publish.
type Publish = (CommandRow, Reply<CommandRow>);
/// A queue that several loops take batches from.
type Queue<T> = Arc<Mutex<mpsc::Receiver<T>>>;

/// Hands submits and publishes to the group-commit loops; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    inserts: mpsc::Sender<Insert>,
    publishes: mpsc::Sender<Publish>,
}

impl Batcher {
    /// Starts the loops; they end when every `Batcher` is dropped.
    pub(crate) fn start(pool: Db, broker: Broker, redeliver_after: Duration) -> Self {
        let (inserts, insert_queue) = mpsc::channel(MAX_BATCH * 4);
        let (publishes, publish_queue) = mpsc::channel(MAX_BATCH * 4);
        let insert_queue = Arc::new(Mutex::new(insert_queue));
        let publish_queue = Arc::new(Mutex::new(publish_queue));
        for _ in 0..LOOPS {
            tokio::spawn(insert_loop(pool.clone(), Arc::clone(&insert_queue)));
            tokio::spawn(publish_loop(
                pool.clone(),
                broker.clone(),
                redeliver_after,
                Arc::clone(&publish_queue),
            ));
        }
        Self { inserts, publishes }
    }

    /// Records one command (with whatever else is being submitted right now).
    pub(crate) async fn insert(&self, command: NewCommand) -> Result<Submitted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inserts
            .send((command, reply))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }

    /// Publishes a `new` row and marks it `queue`; the answer is the row as it is afterwards.
    /// The work goes on if the caller stops waiting.
    pub(crate) async fn publish(&self, row: CommandRow) -> Option<CommandRow> {
        let (reply, answer) = oneshot::channel();
        self.publishes.send((row, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// Takes the first waiting item and whatever else is queued behind it, up to `MAX_BATCH`.
async fn next_batch<T>(queue: &Mutex<mpsc::Receiver<T>>) -> Option<Vec<T>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn insert_loop(pool: Db, queue: Queue<Insert>) {
    while let Some(batch) = next_batch(&queue).await {
        let (commands, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let inserted = insert(&pool, &commands).await;
        match inserted {
            Ok(submitted) => {
                for (reply, submitted) in replies.into_iter().zip(submitted) {
                    let _ = reply.send(Ok(submitted));
                }
            }
            Err(error) if commands.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
            // One command the database refuses must not fail the others: each on its own.
            Err(_) => {
                for (command, reply) in commands.into_iter().zip(replies) {
                    let _ = reply.send(
                        insert(&pool, std::slice::from_ref(&command))
                            .await
                            .and_then(|mut one| {
                                one.pop()
                                    .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
                            }),
                    );
                }
            }
        }
    }
}

async fn insert(pool: &Db, commands: &[NewCommand]) -> Result<Vec<Submitted>, StoreError> {
    let mut conn = pool.acquire().await?;
    cmdbus_store::insert(&mut conn, commands).await
}

async fn publish_loop(pool: Db, broker: Broker, redeliver_after: Duration, queue: Queue<Publish>) {
    while let Some(batch) = next_batch(&queue).await {
        let (rows, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match dispatch(&pool, &broker, redeliver_after, rows.clone()).await {
            Ok(rows) => {
                for (reply, row) in replies.into_iter().zip(rows) {
                    let _ = reply.send(row);
                }
            }
            // The rows stay `new` and the relay publishes them; answer with what they were.
            Err(error) => {
                tracing::warn!(%error, "cannot mark queued; the relay will");
                for (reply, row) in replies.into_iter().zip(rows) {
                    let _ = reply.send(row);
                }
            }
        }
    }
}
