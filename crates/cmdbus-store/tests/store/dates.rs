//! A run is dated by the clock as its row is written, not by its transaction's start: a claim,
//! a finish or a reap that waited for a lock dates what it did after the wait. This is what
//! makes the recorded runs of a key follow one another: a claim whose snapshot saw the key's
//! previous run end starts its own run after that end, however long it waited to take the
//! snapshot (the fault checker's "never two running per key" reads these dates).

use chrono::{DateTime, Utc};
use cmdbus_store::{Outcome, StoreError};
use sqlx::PgPool;
use std::{future::Future, time::Duration};
use uuid::Uuid;

use crate::common::*;

/// A pool of one connection on the test's database, so that a statement run on it once is
/// prepared there: run again, its transaction begins before it waits for a table's lock (the
/// lock is taken as the prepared statement is bound), not after.
async fn one_connection(pool: &PgPool) -> Result<PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
}

/// Runs `statement` while another transaction holds `command_attempts` (which every statement
/// that starts or ends a run writes); once it waits, reads the clock and lets go. Returns that
/// moment and the statement's answer.
async fn after_the_table_is_let_go<T: Send + 'static>(
    pool: &PgPool,
    statement: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<(DateTime<Utc>, T), StoreError> {
    let mut holder = pool.begin().await?;
    sqlx::query("lock table command_attempts in share mode")
        .execute(&mut *holder)
        .await?;
    let waiting = tokio::spawn(statement);
    until_blocked(pool, 1).await?;
    let let_go: DateTime<Utc> = sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(&mut *holder)
        .await?;
    holder.commit().await?;
    let answer = waiting.await.expect("the statement's task")?;
    Ok((let_go, answer))
}

/// The start and end of attempt `attempt` (generation 0) of command `id`.
async fn dates(
    pool: &PgPool,
    id: Uuid,
    attempt: i32,
) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), StoreError> {
    Ok(sqlx::query_as(
        "select started_at, finished_at from command_attempts
          where command_id = $1 and generation = 0 and attempt = $2",
    )
    .bind(id)
    .bind(attempt)
    .fetch_one(pool)
    .await?)
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_claim_that_waited_dates_its_run_after_the_wait(pool: PgPool) -> Checked {
    let one = one_connection(&pool).await?;
    // The claim's statements, prepared on the one connection.
    claim_one(&one, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let waits = queued(&pool, command()).await?;
    let (let_go, claimed) = after_the_table_is_let_go(&pool, {
        let one = one.clone();
        async move { claim_one(&one, &waits).await }
    })
    .await?;
    let row = claimed.expect("claimed once the table was let go");
    let started = row.started_at.expect("a running row has started");
    assert!(
        started >= let_go,
        "run dated {started}, the wait ended {let_go}"
    );
    let (attempt_started, _) = dates(&pool, row.id, 1).await?;
    assert_eq!(
        attempt_started, started,
        "the history row and the command agree"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finish_that_waited_dates_its_end_after_the_wait(pool: PgPool) -> Checked {
    let one = one_connection(&pool).await?;
    let first = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let second = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    // The finish's statement, prepared on the one connection.
    finish(&one, &first, Outcome::Success(serde_json::json!(1))).await?;
    let id = second.id;
    let (let_go, finished) = after_the_table_is_let_go(&pool, {
        let one = one.clone();
        async move { finish(&one, &second, Outcome::Fail(error("boom"))).await }
    })
    .await?;
    assert_eq!(finished.len(), 1, "{finished:?}");
    let ended = finished[0].finished_at.expect("a failed row has finished");
    assert!(
        ended >= let_go,
        "end dated {ended}, the wait ended {let_go}"
    );
    let (_, attempt_ended) = dates(&pool, id, 1).await?;
    let attempt_ended = attempt_ended.expect("the attempt is closed");
    assert!(attempt_ended >= let_go, "attempt closed {attempt_ended}");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_reap_that_waited_dates_the_lost_run_s_end_after_the_wait(pool: PgPool) -> Checked {
    let one = one_connection(&pool).await?;
    let lost = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    // The reaper's statement, prepared on the one connection (nothing has expired yet).
    let reap = |one: PgPool| async move {
        cmdbus_store::reap_expired(&one, Duration::ZERO, 5, None).await
    };
    assert!(reap(one.clone()).await?.is_empty());
    end_lease(&pool, lost.id, Duration::from_secs(5)).await?;
    let (let_go, reaped) = after_the_table_is_let_go(&pool, reap(one.clone())).await?;
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    let (_, attempt_ended) = dates(&pool, lost.id, 1).await?;
    let attempt_ended = attempt_ended.expect("the lost run is closed");
    assert!(
        attempt_ended >= let_go,
        "lost run closed {attempt_ended}, wait ended {let_go}"
    );
    Ok(())
}
