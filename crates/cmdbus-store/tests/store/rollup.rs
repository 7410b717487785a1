//! The run rollup (`stats`, `fold`): a finish batch appends one row per type, minute, outcome
//! and duration bucket, not one per run; the reaper's lost runs are counted too; a fold keeps
//! every sum; minute and hour buckets read the same runs.

use cmdbus_store::{Finish, Outcome, fold, reap_expired, stats};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

use crate::common::*;

/// Total runs per outcome (and, for `success`, per duration bucket) that `stats` reads.
async fn read(
    pool: &PgPool,
    hourly: bool,
) -> Result<Vec<(String, i16, i64)>, cmdbus_store::StoreError> {
    let since = db_now(pool).await? - chrono::Duration::hours(2);
    let (rows, bounds) = stats(pool, TENANT, hourly, since, Some("invoice.send")).await?;
    assert_eq!(bounds.len(), 32, "the histogram's bounds");
    assert!(rows.iter().all(|row| row.kind == "invoice.send"));
    let minutes: std::collections::BTreeSet<_> = rows.iter().map(|row| row.at).collect();
    assert!(
        minutes.len() <= 2,
        "one bucket of time (two across a minute's end)"
    );
    let mut totals: Vec<(String, i16, i64)> = Vec::new();
    for row in rows {
        let bucket = if row.outcome == "success" {
            row.bucket
        } else {
            -1
        };
        match totals
            .iter_mut()
            .find(|(outcome, at, _)| *outcome == row.outcome && *at == bucket)
        {
            Some(total) => total.2 += row.count,
            None => totals.push((row.outcome, bucket, row.count)),
        }
    }
    totals.sort();
    Ok(totals)
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finish_batch_appends_one_row_per_outcome_and_bucket_not_one_per_run(
    pool: PgPool,
) -> Checked {
    let mut running = Vec::new();
    for _ in 0..6 {
        running.push(
            claim_one(&pool, &queued(&pool, command()).await?)
                .await?
                .expect("run"),
        );
    }
    // The successes ran 3.5 s (bucket [3000, 5000): the 22nd bound).
    sqlx::query(
        "update command_attempts set started_at = now() - interval '3500 milliseconds'
          where command_id = any($1)",
    )
    .bind(running[..3].iter().map(|row| row.id).collect::<Vec<_>>())
    .execute(&pool)
    .await?;
    let outcomes = [
        Outcome::Success(json!(1)),
        Outcome::Success(json!(2)),
        Outcome::Success(json!(3)),
        Outcome::Fail(error("boom")),
        Outcome::Retry(error("again"), Duration::from_secs(5)),
        Outcome::Retry(error("again"), Duration::from_secs(5)),
    ];
    let finishes: Vec<Finish> = running
        .iter()
        .zip(outcomes)
        .map(|(row, outcome)| Finish {
            id: row.id,
            claim: run(row).claim,
            outcome,
            lane: Some("exceptions1".to_owned()),
        })
        .collect();
    let finished = cmdbus_store::finish(&pool, &finishes, REDELIVER_AFTER).await?;
    assert_eq!(finished.len(), 6);
    let appended: i64 = sqlx::query_scalar("select count(*) from command_stats")
        .fetch_one(&pool)
        .await?;
    assert!(appended <= 4, "{appended} rows for 6 runs of 3 outcomes");

    // A run the reaper takes back is counted as a lost lease.
    let lost = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("run");
    end_lease(&pool, lost.id, Duration::from_secs(60)).await?;
    assert_eq!(
        reap_expired(&pool, Duration::from_secs(1), 5, None)
            .await?
            .len(),
        1
    );

    let expected = vec![
        ("fail".to_owned(), -1, 1),
        ("lease_lost".to_owned(), -1, 1),
        ("retry".to_owned(), -1, 2),
        ("success".to_owned(), 22, 3),
    ];
    assert_eq!(read(&pool, false).await?, expected);
    assert_eq!(
        read(&pool, true).await?,
        expected,
        "the same runs by the hour"
    );
    fold(
        &pool,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    )
    .await?;
    assert_eq!(read(&pool, false).await?, expected, "folded");
    let rows: i64 = sqlx::query_scalar("select count(*) from command_stats")
        .fetch_one(&pool)
        .await?;
    assert!(rows <= 5 * 2, "{rows} rows: one per key once folded");
    // A statement that ends no attempt (a heartbeat, a progress report) appends nothing.
    let beating = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("run");
    cmdbus_store::heartbeat(&pool, &[run(&beating)], LEASE).await?;
    cmdbus_store::progress(&pool, run(&beating), 0.5, None).await?;
    let after: i64 = sqlx::query_scalar("select count(*) from command_stats")
        .fetch_one(&pool)
        .await?;
    assert_eq!(after, rows);
    Ok(())
}
