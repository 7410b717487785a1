//! The batched statements of the hot path (`mark_queued`, `claim`, `finish`) read their batch's
//! rows, not the backlog: a batch of ten costs the same beside 5,000 waiting commands as beside
//! none, whatever the table's statistics say. They once let the planner serve a batch from a
//! partial index of every `new` or unfinished row, on statistics taken before a backlog grew, so
//! the cost per command grew with the backlog.

use cmdbus_store::{Claim, Finish, Outcome, claim, finish, insert, mark_queued};
use serde_json::json;
use sqlx::{PgPool, postgres::PgPoolOptions};

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
    // One connection, so that the table's read counts are this test's statements' alone.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await?;
    // Statistics taken on an empty table, then a backlog they do not know of (no autovacuum
    // to refresh them mid-test), as in a burst.
    sqlx::query("alter table commands set (autovacuum_enabled = false)")
        .execute(&one)
        .await?;
    sqlx::query("analyze commands").execute(&one).await?;
    let backlog: Vec<_> = (0..5_000).map(|_| command()).collect();
    for chunk in backlog.chunks(1_000) {
        insert(&mut *one.acquire().await?, chunk).await?;
    }
    let half: Vec<_> = backlog[..2_500].iter().map(|c| c.id).collect();
    mark_queued(&one, &half, REDELIVER_AFTER).await?;

    let batch: Vec<_> = (0..10).map(|_| command()).collect();
    let ids: Vec<_> = insert(&mut *one.acquire().await?, &batch)
        .await?
        .into_iter()
        .map(|submitted| submitted.row.id)
        .collect();
    let before = rows_read(&one).await?;
    let queued = mark_queued(&one, &ids, REDELIVER_AFTER).await?;
    assert_eq!(queued.len(), 10);
    let claims: Vec<_> = queued
        .iter()
        .map(|row| Claim {
            id: row.id,
            generation: row.generation,
        })
        .collect();
    let runs = claim(&one, &claims, "w1", LEASE, None).await?.runs;
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
    assert_eq!(finish(&one, &finishes, REDELIVER_AFTER).await?.len(), 10);
    let read = rows_read(&one).await? - before;
    // Each statement reads each of the batch's rows a few times (its lock, its update, the
    // claim's refusal check); the backlog's 5,000 rows are never read.
    assert!(
        read <= 200,
        "a batch of 10 read {read} rows of commands beside a backlog of 5,000"
    );
    Ok(())
}
