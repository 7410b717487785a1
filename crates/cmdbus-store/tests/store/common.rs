//! The harness every contract test shares: commands to submit, the store's statements called the
//! way the api and the worker call them, and a few writes a test makes to set the clock of a row
//! (a lease that ended, a command finished long ago) instead of waiting for it.

use cmdbus_domain::{ErrorInfo, Status};
use cmdbus_store::{
    Claim, Claimed, CommandRow, Finish, NewCommand, Outcome, Refusal, StoreError, Submitted,
    insert, lookup, mark_queued,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// What every test returns: a store error fails it.
pub(crate) type Checked = Result<(), StoreError>;

/// The tenant most tests submit as.
pub(crate) const TENANT: &str = "acme";

/// The lease a claim takes in these tests: long enough that it never ends on its own during a
/// test; tests that need an ended lease write one (`end_lease`).
pub(crate) const LEASE: Duration = Duration::from_secs(300);

/// How long a `queue` row waits past its due time before the sweep publishes it again.
pub(crate) const REDELIVER_AFTER: Duration = Duration::from_secs(60);

/// A command of `TENANT` with three attempts and no key.
pub(crate) fn command() -> NewCommand {
    NewCommand {
        id: Uuid::now_v7(),
        tenant: TENANT.to_owned(),
        kind: "invoice.send".to_owned(),
        payload: json!({"invoice": 42}),
        priority: 0,
        ordering_key: None,
        idempotency_key: None,
        idempotency_scope: None,
        max_attempts: 3,
        subject: None,
        run_at: None,
        traceparent: None,
    }
}

/// A command of `TENANT` ordered by `key`.
pub(crate) fn keyed(key: &str) -> NewCommand {
    NewCommand {
        ordering_key: Some(key.to_owned()),
        ..command()
    }
}

/// Records `commands` as the api does, in one transaction.
pub(crate) async fn submit(
    pool: &PgPool,
    commands: &[NewCommand],
) -> Result<Vec<Submitted>, StoreError> {
    let mut conn = pool.acquire().await?;
    insert(&mut conn, commands).await
}

/// Records one command and returns its row (`new`).
pub(crate) async fn submit_one(
    pool: &PgPool,
    command: NewCommand,
) -> Result<CommandRow, StoreError> {
    let mut submitted = submit(pool, &[command]).await?;
    Ok(submitted.remove(0).row)
}

/// Records one command and confirms its message, as the api does once the broker acked it
/// (`queue`).
pub(crate) async fn queued(pool: &PgPool, command: NewCommand) -> Result<CommandRow, StoreError> {
    let row = submit_one(pool, command).await?;
    let mut marked = mark_queued(pool, &[row.id], REDELIVER_AFTER).await?;
    assert_eq!(marked.len(), 1, "a fresh command is marked queued");
    Ok(marked.remove(0))
}

/// A delivery of `row`'s message at its current generation.
pub(crate) fn delivery(row: &CommandRow) -> Claim {
    Claim {
        id: row.id,
        generation: row.generation,
    }
}

/// Claims `claims` for `worker` (no exception lane): the rows that became `running`.
pub(crate) async fn claim(
    pool: &PgPool,
    claims: &[Claim],
    worker: &str,
) -> Result<Vec<CommandRow>, StoreError> {
    claim_in(pool, claims, worker, None).await
}

/// Claims `claims` for a worker of `lane` (or of no lane), as the worker runs it: the answer for
/// each distinct id, runs first (a failure to read the reasons fails the test).
pub(crate) async fn claim_answers(
    pool: &PgPool,
    claims: &[Claim],
    worker: &str,
    lane: Option<&str>,
) -> Result<Vec<(Uuid, Claimed)>, StoreError> {
    let claims = cmdbus_store::claim(pool, claims, worker, LEASE, lane).await?;
    let mut answers: Vec<(Uuid, Claimed)> = claims
        .runs
        .into_iter()
        .map(|row| (row.id, Claimed::Run(Box::new(row))))
        .collect();
    for (id, why) in claims.refused? {
        answers.push((id, Claimed::Refused(why)));
    }
    Ok(answers)
}

/// Claims `claims` for a worker of `lane` (or of no lane): the rows that became `running`.
pub(crate) async fn claim_in(
    pool: &PgPool,
    claims: &[Claim],
    worker: &str,
    lane: Option<&str>,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(runs(claim_answers(pool, claims, worker, lane).await?))
}

/// The runs a claim started, in its answer's order.
pub(crate) fn runs(answers: Vec<(Uuid, Claimed)>) -> Vec<CommandRow> {
    answers
        .into_iter()
        .filter_map(|(_, answer)| match answer {
            Claimed::Run(row) => Some(*row),
            Claimed::Refused(_) => None,
        })
        .collect()
}

/// Claims one delivery (no lane) that must be refused, and says why; a run that starts fails
/// the test.
pub(crate) async fn refusal(pool: &PgPool, claim: Claim) -> Result<Refusal, StoreError> {
    refusal_in(pool, claim, None).await
}

/// Like `refusal`, for a worker of `lane`.
pub(crate) async fn refusal_in(
    pool: &PgPool,
    claim: Claim,
    lane: Option<&str>,
) -> Result<Refusal, StoreError> {
    let answers = claim_answers(pool, &[claim], "worker-1", lane).await?;
    assert_eq!(answers.len(), 1, "one answer per id: {answers:?}");
    match &answers[0] {
        (id, Claimed::Refused(why)) if *id == claim.id => Ok(*why),
        other => panic!("the claim of {} was not refused: {other:?}", claim.id),
    }
}

/// Claims one delivery of `row`: the running row, or `None` when the claim was refused.
pub(crate) async fn claim_one(
    pool: &PgPool,
    row: &CommandRow,
) -> Result<Option<CommandRow>, StoreError> {
    let mut claimed = claim(pool, &[delivery(row)], "worker-1").await?;
    assert!(claimed.len() <= 1, "one delivery claims one row at most");
    Ok(claimed.pop())
}

/// The run a claimed row holds.
pub(crate) fn run(row: &CommandRow) -> cmdbus_store::Run {
    cmdbus_store::Run {
        id: row.id,
        claim: row.claim.expect("a running row holds a claim token"),
    }
}

/// Ends `row`'s run with `outcome` (no lane): the rows that changed.
pub(crate) async fn finish(
    pool: &PgPool,
    row: &CommandRow,
    outcome: Outcome,
) -> Result<Vec<CommandRow>, StoreError> {
    finish_with_token(pool, row.id, run(row).claim, outcome, None).await
}

/// A command that ran once and failed into `lane`: queued, claimed, finished `fail` with a
/// permanent-looking error and parked there (its parking publish owed).
pub(crate) async fn parked(
    pool: &PgPool,
    command: NewCommand,
    lane: &str,
) -> Result<CommandRow, StoreError> {
    let held = claim_one(pool, &queued(pool, command).await?)
        .await?
        .expect("claimed");
    Ok(finish_with_token(
        pool,
        held.id,
        run(&held).claim,
        Outcome::Fail(error("boom")),
        Some(lane),
    )
    .await?
    .remove(0))
}

/// Ends the run of command `id` held by `token`, with `outcome`, parked in `lane` if it fails.
pub(crate) async fn finish_with_token(
    pool: &PgPool,
    id: Uuid,
    token: Uuid,
    outcome: Outcome,
    lane: Option<&str>,
) -> Result<Vec<CommandRow>, StoreError> {
    cmdbus_store::finish(
        pool,
        &[Finish {
            id,
            claim: token,
            outcome,
            lane: lane.map(str::to_owned),
        }],
        REDELIVER_AFTER,
    )
    .await
}

/// A handler error.
pub(crate) fn error(code: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.to_owned(),
        message: format!("{code} happened"),
        retryable: true,
    }
}

/// The row of command `id` as stored now.
pub(crate) async fn reload(pool: &PgPool, id: Uuid) -> Result<CommandRow, StoreError> {
    Ok(lookup(pool, id).await?.expect("the command exists"))
}

/// The row's status as the domain type.
pub(crate) fn status(row: &CommandRow) -> Status {
    row.status
}

/// The row's exception lane, as stored (`None` when it is not parked).
pub(crate) fn lane(row: &CommandRow) -> Option<String> {
    row.lane.suffix().map(str::to_owned)
}

/// Every column of a row, to show that a statement changed nothing at all.
pub(crate) fn every_column(row: &CommandRow) -> String {
    format!("{row:?}")
}

/// Moves the lease of command `id` to have ended `ago` before the database's clock: the reaper
/// and `hold_claim` see a worker that stopped renewing it.
pub(crate) async fn end_lease(pool: &PgPool, id: Uuid, ago: Duration) -> Checked {
    sqlx::query(
        "update commands set lease_until = now() - make_interval(secs => $2) where id = $1",
    )
    .bind(id)
    .bind(ago.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The history of command `id`: (generation, attempt, worker, outcome, error code) per attempt,
/// in order.
pub(crate) async fn attempts(
    pool: &PgPool,
    id: Uuid,
) -> Result<Vec<(i32, i32, String, Option<String>, Option<String>)>, StoreError> {
    Ok(sqlx::query_as(
        "select generation, attempt, worker, outcome, error->>'code' from command_attempts
          where command_id = $1 order by generation, attempt",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// The database's clock: leases and due times are set by it, so tests compare against it.
pub(crate) async fn db_now(pool: &PgPool) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    Ok(sqlx::query_scalar("select now()").fetch_one(pool).await?)
}

/// How long a statement may take before a test calls it waiting on a lock it must skip: a
/// failure detector, never a synchronisation.
pub(crate) const NO_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Returns once `waiters` statements of this test's database wait for a lock: the point at which
/// a concurrent statement is known to be queued behind another transaction (an event, not a
/// guess at how long it takes). Gives up after a few thousand looks.
pub(crate) async fn until_blocked(pool: &PgPool, waiters: i64) -> Checked {
    for _ in 0..5_000 {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await?;
        if waiting >= waiters {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
    panic!("no statement ever waited for the lock");
}

/// A pool on the test's database whose planner may use neither nested loops, merge joins nor
/// index scans: an update joined to its input then runs as a hash join over a sequential scan,
/// visiting rows in the table's order, not the input's.
pub(crate) async fn hash_joining(pool: &PgPool) -> Result<PgPool, sqlx::Error> {
    let options = (*pool.connect_options()).clone().options([
        ("enable_nestloop", "off"),
        ("enable_mergejoin", "off"),
        ("enable_indexscan", "off"),
        ("enable_bitmapscan", "off"),
    ]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
}

/// Runs `statement` while another transaction holds row `held` locked; once the statement waits
/// for that row, tries row `other`. Returns whether `other` was free while the statement waited
/// (its locks come in id order: it holds none past the row it waits for) and the statement's
/// answer once `held` was let go.
pub(crate) async fn other_free_while_waiting<T: Send + 'static>(
    pool: &PgPool,
    held: Uuid,
    other: Uuid,
    statement: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<(Result<(), sqlx::Error>, T), StoreError> {
    let mut holder = pool.begin().await?;
    sqlx::query("select 1 from commands where id = $1 for update")
        .bind(held)
        .execute(&mut *holder)
        .await?;
    let waiting = tokio::spawn(statement);
    until_blocked(pool, 1).await?;
    let mut probe = pool.begin().await?;
    let free = sqlx::query("select 1 from commands where id = $1 for update nowait")
        .bind(other)
        .execute(&mut *probe)
        .await
        .map(|_| ());
    probe.rollback().await?;
    holder.rollback().await?;
    let answer = waiting.await.expect("the statement's task")?;
    Ok((free, answer))
}
