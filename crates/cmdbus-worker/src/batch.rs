//! Group commit of the worker's hot path: the deliveries that arrive together are claimed in
//! one statement, and the runs that end together are finished in one, each batch's state changes
//! announced in one events message. Nothing waits for a batch to fill (`GroupCommit`), so a lone
//! command goes through at once.

use cmdbus_bus::Broker;
use cmdbus_store::Db;
use cmdbus_store::{Claim, CommandRow, Finish, GroupCommit, StoreError};
use futures_util::future::BoxFuture;
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};
use uuid::Uuid;

/// Most runs one statement claims or finishes.
const MAX_BATCH: usize = 128;
/// Batches in flight at once: one fills while the other commits.
const LOOPS: usize = 2;

/// The row a claim or finish changed; `None` when the statement changed nothing for it.
pub(crate) type Changed = Result<Option<CommandRow>, StoreError>;

/// The worker's claim and finish loops; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batches {
    claims: GroupCommit<Claim, Changed>,
    finishes: GroupCommit<Finish, Changed>,
}

/// What both loops need.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) pool: Db,
    pub(crate) broker: Broker,
    pub(crate) worker: String,
    pub(crate) lease: Duration,
    pub(crate) redeliver_after: Duration,
    /// The exception lane this worker serves, if any: it may also claim failures parked there.
    pub(crate) lane: Option<String>,
}

/// One batched statement: changes the rows of a batch and returns them.
type Statement<T> =
    for<'a> fn(&'a Settings, &'a [T]) -> BoxFuture<'a, Result<Vec<CommandRow>, StoreError>>;

impl Batches {
    /// Starts the loops; they end when every handle is dropped.
    pub(crate) fn start(settings: Settings) -> Self {
        Self {
            claims: group("claim", settings.clone(), |claim| claim.id, claim_statement),
            finishes: group("finish", settings, |finish| finish.id, finish_statement),
        }
    }

    /// Claims the command a delivery names (with whatever else arrived at the same time), and
    /// announces the claim. `Ok(None)`: nothing to run.
    pub(crate) async fn claim(&self, claim: Claim) -> Changed {
        self.claims.run(claim).await.unwrap_or_else(gone)
    }

    /// Ends a run (with whatever else ended at the same time), and announces it. `Ok(None)`:
    /// fenced out, the run had lost its claim.
    pub(crate) async fn finish(&self, finish: Finish) -> Changed {
        self.finishes.run(finish).await.unwrap_or_else(gone)
    }
}

fn claim_statement<'a>(
    settings: &'a Settings,
    batch: &'a [Claim],
) -> BoxFuture<'a, Result<Vec<CommandRow>, StoreError>> {
    Box::pin(cmdbus_store::claim(
        &settings.pool,
        batch,
        &settings.worker,
        settings.lease,
        settings.lane.as_deref(),
    ))
}

fn finish_statement<'a>(
    settings: &'a Settings,
    batch: &'a [Finish],
) -> BoxFuture<'a, Result<Vec<CommandRow>, StoreError>> {
    Box::pin(cmdbus_store::finish(
        &settings.pool,
        batch,
        settings.redeliver_after,
    ))
}

/// Group-commit loops that run `statement` on each batch and announce what it changed.
fn group<T: Send + Sync + 'static>(
    name: &'static str,
    settings: Settings,
    id: fn(&T) -> Uuid,
    statement: Statement<T>,
) -> GroupCommit<T, Changed> {
    GroupCommit::start(name, LOOPS, MAX_BATCH, move |items: Vec<T>| {
        let settings = settings.clone();
        async move {
            let changed = rows_of(&settings, &items, id, statement).await;
            let events = changed
                .iter()
                .filter_map(|changed| changed.as_ref().ok().and_then(Option::as_ref))
                .map(CommandRow::event);
            settings.broker.announce(events).await;
            changed
        }
    })
}

fn gone() -> Changed {
    Err(StoreError::Database(sqlx::Error::PoolClosed))
}

/// Runs `statement` on the whole batch and matches the rows it returns to the items by id. When
/// the batch fails (or names a command twice, where a row could not say whose it is), each item
/// runs alone instead: the database's answer to one item — a value it refuses, say — must not
/// become every other item's.
async fn rows_of<T>(
    settings: &Settings,
    items: &[T],
    id: fn(&T) -> Uuid,
    statement: Statement<T>,
) -> Vec<Changed> {
    let distinct = items.iter().map(id).collect::<HashSet<_>>().len() == items.len();
    if distinct {
        match statement(settings, items).await {
            Ok(rows) => {
                let mut by_id: HashMap<Uuid, CommandRow> =
                    rows.into_iter().map(|row| (row.id, row)).collect();
                return items
                    .iter()
                    .map(|item| Ok(by_id.remove(&id(item))))
                    .collect();
            }
            Err(error) if items.len() == 1 => return vec![Err(error)],
            Err(error) => {
                tracing::debug!(%error, items = items.len(), "batch refused; one at a time");
            }
        }
    }
    let mut changed = Vec::with_capacity(items.len());
    for item in items {
        changed.push(
            statement(settings, std::slice::from_ref(item))
                .await
                .map(|mut rows| rows.pop()),
        );
    }
    changed
}
