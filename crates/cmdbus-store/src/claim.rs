//! The claim: the one statement that decides whether a delivery starts a run, and, for each
//! command it did not start, why — so that the worker settles the message on the store's word
//! instead of re-deriving the rules (`rules.rs`) from a row.

// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor};
use std::time::Duration;
use uuid::Uuid;

use crate::{
    CommandRow, StoreError,
    rules::{ATTEMPTS_LEFT, CHANGED, IN_TURN, STATUS_BY_ID, in_lock_order},
};

/// A delivery that asks to run a command.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The command.
    pub id: Uuid,
    /// The generation named in the message; an older one claims nothing.
    pub generation: i32,
}

/// Why a claim started no run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The command waits, at the generation asked for, with attempts left (or, for a lane's
    /// claim, parked in that lane): its key is not its turn — an earlier command of its ordering
    /// key is unfinished, or another command of the key runs (`IN_TURN`) — or another copy of
    /// its message is being claimed right now. Ask again shortly.
    WaitingForPredecessor,
    /// An older generation, a cancelled or finished command, or one another run holds (if that
    /// run's worker dies, the reaper publishes it again): this copy is not needed.
    Duplicate,
    /// No such command (yet: a replica that lags may still bring it).
    Unknown,
    /// The command waits, at the generation asked for, but its attempts are used up.
    Exhausted,
    /// The command waits for its key's turn, held in PostgreSQL (`turns.rs`, after a claim
    /// refused it as `WaitingForPredecessor`): the key's hand-on publishes it again when its
    /// turn comes, so this copy is not needed.
    Held,
}

impl Refusal {
    /// The word for it, as logs and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::WaitingForPredecessor => "waiting_for_predecessor",
            Refusal::Duplicate => "duplicate",
            Refusal::Unknown => "unknown",
            Refusal::Exhausted => "exhausted",
            Refusal::Held => "held",
        }
    }
}

/// What a claim made of one delivery.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// A run started: the row as it is now (`running`, with its claim token and payload).
    Run(Box<CommandRow>),
    /// No run started, and why.
    Refused(Refusal),
}

/// What a claim made of a batch.
#[derive(Debug)]
pub struct Claims {
    /// The runs that started: each row as it is now (`running`, with its claim token).
    pub runs: Vec<CommandRow>,
    /// Why each other id was refused; `Err` when that could not be read (the runs stand all the
    /// same).
    pub refused: Result<Vec<(Uuid, Refusal)>, StoreError>,
}

impl Claims {
    /// One answer per id: its run or why it was refused. An id whose reason could not be read
    /// has none (the error is logged here).
    pub fn answers(self) -> Vec<(Uuid, Claimed)> {
        let mut answers: Vec<(Uuid, Claimed)> = self
            .runs
            .into_iter()
            .map(|row| (row.id, Claimed::Run(Box::new(row))))
            .collect();
        match self.refused {
            Ok(refused) => answers.extend(
                refused
                    .into_iter()
                    .map(|(id, why)| (id, Claimed::Refused(why))),
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot read why commands were not claimed");
            }
        }
        answers
    }
}

/// Claims commands for `worker`: `new`/`queue` becomes `running` with `attempt + 1`, a fresh
/// claim token and a lease, in one conditional statement that also opens the attempt's history
/// row. A worker of an exception lane (`lane`) may also claim the failures parked in that lane:
/// that is how an operator re-runs them. Returns one answer per distinct id of `claims`.
///
/// What is never claimed: an older generation, a cancelled command, one whose attempts are used
/// up (`ATTEMPTS_LEFT`), a running one (only the reaper takes a run away, once its lease
/// expired), and a command with an ordering key while another command of the same key and
/// tenant runs or an earlier one is unfinished (`IN_TURN`). Two claims of one key under way at
/// once each read the key in their own snapshot; a unique index on running rows makes the later
/// one fail instead of starting a second run of the key, and the claim then asks again.
///
/// Why a command was not claimed is read by a second statement right after the claim, only
/// when some command was refused: it sees what the claim waited for (another worker's claim of
/// the same command, say). `Err` only when the claim itself failed (nothing was claimed); a
/// failure to read the reasons leaves the runs that started in `Claims`.
pub async fn claim<'c, E: PgExecutor<'c> + Copy>(
    executor: E,
    claims: &[Claim],
    worker: &str,
    lease: Duration,
    lane: Option<&str>,
) -> Result<Claims, StoreError> {
    let claims = in_lock_order(claims, |c| c.id);
    let mut tries = 0;
    let claimed = loop {
        match start_runs(executor, &claims, worker, lease, lane).await {
            // Another claim started a run of one of these keys while this one was under way (its
            // snapshot could not see it): nothing was claimed; a fresh statement sees that run.
            Err(error)
                if error.constraint() == Some(ONE_RUNNING_PER_KEY) && tries < CONFLICT_TRIES =>
            {
                tries += 1;
            }
            started => break started?,
        }
    };
    let refused: Vec<&Claim> = claims
        .iter()
        .copied()
        .filter(|c| !claimed.iter().any(|row| row.id == c.id))
        .collect();
    let refused = if refused.is_empty() {
        Ok(Vec::new())
    } else {
        refusals(executor, &refused, lane).await
    };
    Ok(Claims {
        runs: claimed,
        refused,
    })
}

/// The unique index that lets one command of a key run at a time: a claim that would start a
/// second one fails on it (migration `0006_one_running_per_key.sql`).
const ONE_RUNNING_PER_KEY: &str = "commands_one_running_per_key";

/// How often a claim asks again after another claim of the same key beat it. Each retry follows
/// a run that committed, so more than a few mean a storm of claims of one key; the worker then
/// puts the deliveries back.
const CONFLICT_TRIES: u32 = 3;

/// The claim's statement: starts the runs of `claims` (in lock order) that may start.
async fn start_runs<'c>(
    executor: impl PgExecutor<'c>,
    claims: &[&Claim],
    worker: &str,
    lease: Duration,
    lane: Option<&str>,
) -> Result<Vec<CommandRow>, StoreError> {
    let ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let generations: Vec<i32> = claims.iter().map(|c| c.generation).collect();
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with locked as materialized (
             -- The rows first, in id order: the update's join may visit them in any order, and
             -- two batches that lock shared rows in different orders deadlock (a second's
             -- stall, then a failed batch). A running row is not waited for: it is not claimed.
             select c.id from commands c
              where c.id = any($1)
                and ({STATUS_BY_ID} in ('new', 'queue') or ({STATUS_BY_ID} = 'fail' and c.lane = $5))
              order by id for update
         ),
         -- The clock once every row is locked: a claim that waited for a row (held by a sweep
         -- whose publish hangs on a broker that is gone, say) while its key's previous run
         -- ended would otherwise date its run before that end, two runs of one key on record
         -- that never ran together (`cmdbus-check`, seed 13 with every broker node killed).
         clock as materialized (
             select clock_timestamp() as at from (select count(*) from locked) all_locked
         ), claimed as (
             update commands c
                set status = 'running', attempt = c.attempt + 1, worker = $3,
                    claim = gen_random_uuid(),
                    lease_until = clock.at + make_interval(secs => $4),
                    started_at = clock.at, progress = null, progress_note = null,
                    queued_at = coalesce(c.queued_at, clock.at),
                    next_attempt_at = null, redeliver_at = null, finished_at = null,
                    held_since = null, {CHANGED}
               from unnest($1::uuid[], $2::int4[]) as d(id, generation)
               join locked on locked.id = d.id
               cross join clock
              where c.id = d.id and c.generation = d.generation and not c.cancel_requested
                and (({STATUS_BY_ID} in ('new', 'queue') and {ATTEMPTS_LEFT})
                     or ({STATUS_BY_ID} = 'fail' and c.lane = $5))
                and {IN_TURN}
             returning c.*
         ), history as (
             insert into command_attempts (command_id, generation, attempt, worker, started_at)
             select id, generation, attempt, worker, started_at from claimed
         )
         select * from claimed"
    )))
    .bind(&ids)
    .bind(&generations)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(lane)
    .fetch_all(executor)
    .await?)
}

/// Why each of `refused` was not claimed, as the command's row says right after the claim. A
/// failure parked in the claimant's `lane` was claimable but for its key's turn: it waits, so
/// that the lane's message is kept until the key is free.
async fn refusals<'c>(
    executor: impl PgExecutor<'c>,
    refused: &[&Claim],
    lane: Option<&str>,
) -> Result<Vec<(Uuid, Refusal)>, StoreError> {
    let ids: Vec<Uuid> = refused.iter().map(|c| c.id).collect();
    let generations: Vec<i32> = refused.iter().map(|c| c.generation).collect();
    let rows: Vec<(Uuid, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select d.id,
                case when c.id is null then 'unknown'
                     when c.generation <> d.generation or c.cancel_requested then 'duplicate'
                     when c.status = 'fail' and c.lane = $3 then 'waiting_for_predecessor'
                     when c.status not in ('new', 'queue') then 'duplicate'
                     when {ATTEMPTS_LEFT} then 'waiting_for_predecessor'
                     else 'exhausted' end
           from unnest($1::uuid[], $2::int4[]) as d(id, generation)
           left join commands c on c.id = d.id"
    )))
    .bind(&ids)
    .bind(&generations)
    .bind(lane)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, why)| {
            let why = match why.as_str() {
                "unknown" => Refusal::Unknown,
                "waiting_for_predecessor" => Refusal::WaitingForPredecessor,
                "exhausted" => Refusal::Exhausted,
                _ => Refusal::Duplicate,
            };
            (id, why)
        })
        .collect())
}
