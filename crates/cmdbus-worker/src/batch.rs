//! Group commit of the worker's hot path: the deliveries that arrive together are claimed in
//! one statement, and the runs that end together are finished in one, each batch's state changes
//! announced in one events message. Nothing waits for a batch to fill (`GroupCommit`), so a lone
//! command goes through at once.

use cmdbus_bus::{Broker, Outgoing};
use cmdbus_store::Db;
use cmdbus_store::{Claim, Claimed, CommandRow, Finish, GroupCommit, Refusal, StoreError};
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
        let mut answers = claim_once(settings, batch).await?;
        if settings.lane.is_some() {
            // A lane's delivery that waits for its key asks again after a delay: lanes are
            // re-run by an operator, one at a time, never a backlog.
            return Ok(answers);
        }
        // Deliveries whose key is busy are held in PostgreSQL and their messages acked; a
        // command that is its key's turn by the time it is held (its predecessor finished in
        // between) is claimed once more right away.
        let waiting: Vec<Claim> = batch
            .iter()
            .filter(|claim| {
                answers.iter().any(|(id, answer)| {
                    *id == claim.id
                        && matches!(answer, Claimed::Refused(Refusal::WaitingForPredecessor))
                })
            })
            .copied()
            .collect();
        if waiting.is_empty() {
            return Ok(answers);
        }
        let held = match cmdbus_store::hold(&settings.pool, &waiting).await {
            Ok(held) => held,
            Err(error) => {
                // They ask again after a delay, as a lane's do.
                tracing::warn!(%error, "cannot hold commands for their key");
                return Ok(answers);
            }
        };
        let again: Vec<Claim> = waiting
            .iter()
            .filter(|claim| !held.contains(&claim.id))
            .copied()
            .collect();
        let again = if again.is_empty() {
            Vec::new()
        } else {
            claim_once(settings, &again).await.unwrap_or_default()
        };
        for (id, answer) in &mut answers {
            if held.contains(id) {
                *answer = Claimed::Refused(Refusal::Held);
            } else if let Some((_, claimed)) = again.iter().find(|(again, _)| again == id) {
                *answer = claimed.clone();
            }
        }
        Ok(answers)
    })
}

async fn claim_once(
    settings: &Settings,
    batch: &[Claim],
) -> Result<Vec<(Uuid, Claimed)>, StoreError> {
    let claims = cmdbus_store::claim(
        &settings.pool,
        batch,
        &settings.worker,
        settings.lease,
        settings.lane.as_deref(),
    )
    .await?;
    Ok(claims.answers())
}

fn finish_statement<'a>(
    settings: &'a Settings,
    batch: &'a [Finish],
) -> BoxFuture<'a, Result<Vec<CommandRow>, StoreError>> {
    Box::pin(async move {
        let finished =
            cmdbus_store::finish(&settings.pool, batch, settings.redeliver_after).await?;
        let freed: Vec<(String, String)> = finished
            .iter()
            .filter(|row| row.status.is_terminal())
            .filter_map(|row| Some((row.tenant.clone(), row.ordering_key.clone()?)))
            .collect();
        if !freed.is_empty() {
            // Off the finish's path: its runs settle while the next command of each key goes
            // out. Lost with this process, it is the api's sweep (`take_turns`) that hands on.
            tokio::spawn(hand_on(settings.clone(), freed));
        }
        Ok(finished)
    })
}

/// How long a command taken for its hand-on is left to this worker to publish; past it, the
/// api's redelivery sweep publishes it.
const HAND_ON_LEASE: Duration = Duration::from_secs(10);

/// Publishes the next held command of each key in `freed` (tenant, ordering key) — keys whose
/// command just finished — if it is now its key's turn.
async fn hand_on(settings: Settings, freed: Vec<(String, String)>) {
    let keys: Vec<(&str, &str)> = freed
        .iter()
        .map(|(tenant, key)| (tenant.as_str(), key.as_str()))
        .collect();
    let next = match cmdbus_store::hand_on(&settings.pool, &keys, HAND_ON_LEASE).await {
        Ok(next) if next.is_empty() => return,
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(%error, "cannot hand keys on; the api's sweep will");
            return;
        }
    };
    let outgoing: Vec<Outgoing> = next
        .iter()
        .map(|row| settings.broker.outgoing(row.routing()))
        .collect();
    let results = settings.broker.publish_commands(&outgoing).await;
    let confirmed: Vec<Uuid> = next
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .map(|(row, _)| row.id)
        .collect();
    metrics::counter!("cmdbus_handed_on_total").increment(confirmed.len() as u64);
    // An unconfirmed one is published by the redelivery sweep once its hand-on lease ends.
    if let Err(error) =
        cmdbus_store::redelivered(&settings.pool, &confirmed, settings.redeliver_after).await
    {
        tracing::warn!(%error, "handed on, but cannot record it");
    }
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
