//! The batched statements of the hot path (`mark_queued`, `claim`, `finish`) read their batch's
//! rows, not the backlog: a batch of ten costs the same beside 5,000 waiting commands as beside
//! none, whatever the table's statistics say. They once let the planner serve a batch from a
//! partial index of every `new` or unfinished row, on statistics taken before a backlog grew, so
//! the cost per command grew with the backlog. cmdbus runs them on connections that keep one
//! generic plan each (`Db::for_batches`), made whenever a statement first runs; those must read
//! their rows by key too, even when made on an empty table.

use cmdbus_store::{Claim, Finish, Outcome, claim, finish, insert, mark_queued};
use serde_json::json;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::common::*;

/// Rows of `commands` read so far, by sequential and index scans, as the statistics system has
/// them once this connection's own counts are flushed (`one` is the only connection that
/// touches the table).
async fn rows_read(one: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query("select pg_stat_force_next_flush()")
        .execute(one)
        .await?;
    sqlx::query_scalar(
        "select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) from pg_stat_user_tables
          where relid = 'commands'::regclass",
    )
    .fetch_one(one)
    .await
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_reads_its_own_rows_not_the_backlog_beside_it(pool: PgPool) -> Checked {
    let options = pool.connect_options().as_ref().clone();
    reads_only_its_own_rows(options, false).await
}

/// The connections `Db::for_batches` runs them on keep one generic plan per statement, made the
/// first time it runs: here on an empty table, as when cmdbus starts on a new database.
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_on_plans_made_on_an_empty_table_reads_its_own_rows_too(pool: PgPool) -> Checked {
    let options = cmdbus_store::for_batches(pool.connect_options().as_ref().clone());
    reads_only_its_own_rows(options, true).await
}

/// A batch of ten, through `mark_queued`, `claim` and `finish` on one connection made with
/// `options` beside a backlog of 5,000 (half of it `queue`), reads at most 200 rows of
/// `commands`. With `plan_first`, batches go through on the empty table first, so that cached
/// plans are made there.
async fn reads_only_its_own_rows(options: PgConnectOptions, plan_first: bool) -> Checked {
    // One connection, so that the table's read counts are this test's statements' alone.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    // Statistics taken on an empty table, then a backlog they do not know of (no autovacuum
    // to refresh them mid-test), as in a burst.
    sqlx::query("alter table commands set (autovacuum_enabled = false)")
        .execute(&one)
        .await?;
    sqlx::query("analyze commands").execute(&one).await?;
    if plan_first {
        // Each statement runs more than five times: past the point where PostgreSQL may
        // switch a statement to its generic plan.
        for _ in 0..6 {
            run_one_batch(&one).await?;
        }
    }
    let backlog: Vec<_> = (0..5_000).map(|_| command()).collect();
    for chunk in backlog.chunks(1_000) {
        insert(&mut *one.acquire().await?, chunk).await?;
    }
    let half: Vec<_> = backlog[..2_500].iter().map(|c| c.id).collect();
    mark_queued(&one, &half, REDELIVER_AFTER).await?;

    let before = rows_read(&one).await?;
    run_one_batch(&one).await?;
    let read = rows_read(&one).await? - before;
    assert!(
        read <= 200,
        "a batch of 10 read {read} rows of commands beside a backlog of 5,000"
    );
    Ok(())
}

/// Ten new commands, queued, claimed and finished, a statement each (the insert is not
/// counted: it reads nothing).
async fn run_one_batch(one: &PgPool) -> Checked {
    let batch: Vec<_> = (0..10).map(|_| command()).collect();
    let ids: Vec<_> = insert(&mut *one.acquire().await?, &batch)
        .await?
        .into_iter()
        .map(|submitted| submitted.row.id)
        .collect();
    let queued = mark_queued(one, &ids, REDELIVER_AFTER).await?;
    assert_eq!(queued.len(), 10);
    let claims: Vec<_> = queued
        .iter()
        .map(|row| Claim {
            id: row.id,
            generation: row.generation,
        })
        .collect();
    let runs = claim(one, &claims, "w1", LEASE, None).await?.runs;
    assert_eq!(runs.len(), 10);
    let finishes: Vec<_> = runs
        .iter()
        .map(|row| Finish {
            id: row.id,
            claim: run(row).claim,
            outcome: Outcome::Success(json!({"ok": true})),
            lane: None,
        })
        .collect();
    // Each statement reads each of the batch's rows a few times (its lock, its update, the
    // claim's refusal check); the backlog's 5,000 rows are never read.
    assert_eq!(finish(one, &finishes, REDELIVER_AFTER).await?.len(), 10);
    Ok(())
}
