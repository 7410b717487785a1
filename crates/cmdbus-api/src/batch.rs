//! Group commit of the submit path: requests that arrive together share one insert transaction,
//! and one burst of pipelined confirms followed by one `queue` update (`GroupCommit`: nothing
//! waits for a batch to fill).

use cmdbus_bus::Broker;
use cmdbus_store::Db;
use cmdbus_store::{CommandRow, GroupCommit, NewCommand, StoreError, Submitted};
use std::time::Duration;

use crate::dispatch::dispatch;

/// Most commands one statement carries.
const MAX_BATCH: usize = 256;
/// Batches in flight at once per kind: one fills while the other commits.
const LOOPS: usize = 2;

/// Hands submits and publishes to the group-commit loops; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    inserts: GroupCommit<NewCommand, Result<Submitted, StoreError>>,
    publishes: GroupCommit<CommandRow, CommandRow>,
}

impl Batcher {
    /// Starts the loops; they end when every `Batcher` is dropped.
    pub(crate) fn start(pool: Db, broker: Broker, redeliver_after: Duration) -> Self {
        let (insert_pool, insert_broker) = (pool.clone(), broker.clone());
        let inserts = GroupCommit::start("insert", LOOPS, MAX_BATCH, move |commands| {
            let (pool, broker) = (insert_pool.clone(), insert_broker.clone());
            async move {
                let submitted = insert_batch(pool, commands).await;
                // The `new` state of the batch, in one events message.
                let created = submitted
                    .iter()
                    .filter_map(|s| s.as_ref().ok().filter(|s| s.created))
                    .map(|s| s.row.event());
                broker.announce(created).await;
                submitted
            }
        });
        let publishes =
            GroupCommit::start("publish", LOOPS, MAX_BATCH, move |rows: Vec<CommandRow>| {
                let (pool, broker) = (pool.clone(), broker.clone());
                async move {
                    match dispatch(&pool, &broker, redeliver_after, rows.clone()).await {
                        Ok(rows) => rows,
                        // The rows stay `new` and the relay publishes them; answer with what they were.
                        Err(error) => {
                            tracing::warn!(%error, "cannot mark queued; the relay will");
                            rows
                        }
                    }
                }
            });
        Self { inserts, publishes }
    }

    /// Records one command (with whatever else is being submitted right now).
    pub(crate) async fn insert(&self, command: NewCommand) -> Result<Submitted, StoreError> {
        self.inserts
            .run(command)
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::PoolClosed)))
    }

    /// Publishes a `new` row and marks it `queue`; the answer is the row as it is afterwards.
    /// The work goes on if the caller stops waiting.
    pub(crate) async fn publish(&self, row: CommandRow) -> Option<CommandRow> {
        self.publishes.run(row).await
    }
}

/// Inserts a batch; when the database refuses it, each command on its own, so that one command
/// the database refuses does not fail the others.
pub(crate) async fn insert_batch(
    pool: Db,
    commands: Vec<NewCommand>,
) -> Vec<Result<Submitted, StoreError>> {
    match insert(&pool, &commands).await {
        Ok(submitted) => submitted.into_iter().map(Ok).collect(),
        Err(error) if commands.len() == 1 => vec![Err(error)],
        Err(_) => {
            let mut answers = Vec::with_capacity(commands.len());
            for command in &commands {
                answers.push(insert(&pool, std::slice::from_ref(command)).await.and_then(
                    |mut one| {
                        one.pop()
                            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
                    },
                ));
            }
            answers
        }
    }
}

async fn insert(pool: &Db, commands: &[NewCommand]) -> Result<Vec<Submitted>, StoreError> {
    let mut conn = pool.acquire().await?;
    cmdbus_store::insert(&mut conn, commands).await
}
