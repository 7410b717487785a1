//! Group commit of the worker's hot path: the deliveries that arrive together are claimed in
//! one statement, and the runs that end together are finished in one, each batch's state changes
//! announced in one events message. Nothing waits for a batch to fill (`GroupCommit`), so a lone
//! command goes through at once.

use cmdbus_bus::Broker;
use cmdbus_store::Db;
use cmdbus_store::{Claim, Claimed, CommandRow, Finish, GroupCommit, StoreError};
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

/// A statement's answer for one item; `None` when it had none for it (a finish that changed
/// nothing: fenced out).
pub(crate) type Answer<R> = Result<Option<R>, StoreError>;

/// The row a finish changed; `None` when it was fenced out.
pub(crate) type Changed = Answer<CommandRow>;

/// What a claim made of a delivery.
pub(crate) type ClaimAnswer = Answer<(Uuid, Claimed)>;

/// An answer of a batched statement: whose it is, and the row it changed, if any (announced).
trait Reply {
    fn id(&self) -> Uuid;
    fn changed(&self) -> Option<&CommandRow>;
}

impl Reply for CommandRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn changed(&self) -> Option<&CommandRow> {
        Some(self)
    }
}

impl Reply for (Uuid, Claimed) {
    fn id(&self) -> Uuid {
        self.0
    }

    fn changed(&self) -> Option<&CommandRow> {
        match &self.1 {
            Claimed::Run(row) => Some(row),
            Claimed::Refused(_) => None,
        }
    }
}

/// The worker's claim and finish loops; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batches {
    claims: GroupCommit<Claim, ClaimAnswer>,
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

/// One batched statement: changes the rows of a batch and answers for them.
type Statement<T, R> =
    for<'a> fn(&'a Settings, &'a [T]) -> BoxFuture<'a, Result<Vec<R>, StoreError>>;

impl Batches {
    /// Starts the loops; they end when every handle is dropped.
    pub(crate) fn start(settings: Settings) -> Self {
        Self {
            claims: group("claim", settings.clone(), |claim| claim.id, claim_statement),
            finishes: group("finish", settings, |finish| finish.id, finish_statement),
        }
    }

    /// Claims the command a delivery names (with whatever else arrived at the same time), and
    /// announces the claim. The store says whether a run started, and if not, why; `Ok(None)`:
    /// nothing started and the store could not say why.
    pub(crate) async fn claim(&self, claim: Claim) -> Result<Option<Claimed>, StoreError> {
        let answer = self.claims.run(claim).await.unwrap_or_else(gone)?;
        Ok(answer.map(|(_, claimed)| claimed))
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
) -> BoxFuture<'a, Result<Vec<(Uuid, Claimed)>, StoreError>> {
    Box::pin(async move {
        let claims = cmdbus_store::claim(
            &settings.pool,
            batch,
            &settings.worker,
            settings.lease,
            settings.lane.as_deref(),
        )
        .await?;
        Ok(claims.answers())
    })
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
fn group<T: Send + Sync + 'static, R: Reply + Send + Sync + 'static>(
    name: &'static str,
    settings: Settings,
    id: fn(&T) -> Uuid,
    statement: Statement<T, R>,
) -> GroupCommit<T, Answer<R>> {
    GroupCommit::start(name, LOOPS, MAX_BATCH, move |items: Vec<T>| {
        let settings = settings.clone();
        async move {
            let changed = answers_of(&settings, &items, id, statement).await;
            let events = changed
                .iter()
                .filter_map(|changed| changed.as_ref().ok().and_then(Option::as_ref))
                .filter_map(R::changed)
                .map(CommandRow::event);
            settings.broker.announce(events).await;
            changed
        }
    })
}

fn gone<R>() -> Answer<R> {
    Err(StoreError::Database(sqlx::Error::PoolClosed))
}

/// Runs `statement` on the whole batch and matches its answers to the items by id. When the
/// batch fails (or names a command twice, where an answer could not say whose it is), each item
/// runs alone instead: the database's answer to one item — a value it refuses, say — must not
/// become every other item's.
async fn answers_of<T, R: Reply>(
    settings: &Settings,
    items: &[T],
    id: fn(&T) -> Uuid,
    statement: Statement<T, R>,
) -> Vec<Answer<R>> {
    let distinct = items.iter().map(id).collect::<HashSet<_>>().len() == items.len();
    if distinct {
        match statement(settings, items).await {
            Ok(answers) => {
                let mut by_id: HashMap<Uuid, R> = answers
                    .into_iter()
                    .map(|answer| (answer.id(), answer))
                    .collect();
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
                .map(|mut answers| answers.pop()),
        );
    }
    changed
}
