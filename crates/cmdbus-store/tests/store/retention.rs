//! `purge_finished`: commands that finished before the cutoff are deleted with their history;
//! nothing unfinished is ever deleted, however old, and nothing that finished after the cutoff.

use cmdbus_store::{NewCommand, Outcome, purge_finished};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::*;

/// A command whose UUID v7 says it was created `days` ago.
fn created_days_ago(days: i64) -> NewCommand {
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    let id = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(at.timestamp()).expect("after 1970"),
        at.timestamp_subsec_nanos(),
    ));
    NewCommand { id, ..command() }
}

/// Records `command`, runs it to success and dates its end `days` ago.
async fn finished_days_ago(
    pool: &PgPool,
    command: NewCommand,
    days: i64,
) -> Result<Uuid, cmdbus_store::StoreError> {
    let held = claim_one(pool, &queued(pool, command).await?)
        .await?
        .expect("claimed");
    finish(pool, &held, Outcome::Success(json!(1))).await?;
    sqlx::query(
        "update commands set finished_at = now() - make_interval(days => $2) where id = $1",
    )
    .bind(held.id)
    .bind(i32::try_from(days).expect("a few days"))
    .execute(pool)
    .await?;
    Ok(held.id)
}

async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, cmdbus_store::StoreError> {
    Ok(cmdbus_store::lookup(pool, id).await?.is_some())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn finished_commands_older_than_retention_go_with_their_history(pool: PgPool) -> Checked {
    let expired = finished_days_ago(&pool, created_days_ago(10), 9).await?;
    let kept = finished_days_ago(&pool, created_days_ago(10), 1).await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(3);

    let deleted = purge_finished(&pool, cutoff, 100).await?;

    assert_eq!(deleted, 1);
    assert!(!exists(&pool, expired).await?);
    assert!(
        attempts(&pool, expired).await?.is_empty(),
        "its attempts went with it"
    );
    assert!(exists(&pool, kept).await?);
    assert_eq!(attempts(&pool, kept).await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn unfinished_commands_are_never_purged_however_old(pool: PgPool) -> Checked {
    let recorded = submit_one(&pool, created_days_ago(30)).await?;
    let waiting = queued(&pool, created_days_ago(30)).await?;
    let running = claim_one(&pool, &queued(&pool, created_days_ago(30)).await?)
        .await?
        .expect("claimed");
    let retrying = claim_one(&pool, &queued(&pool, created_days_ago(30)).await?)
        .await?
        .expect("claimed");
    finish(
        &pool,
        &retrying,
        Outcome::Retry(error("flaky"), std::time::Duration::ZERO),
    )
    .await?;

    let deleted =
        purge_finished(&pool, chrono::Utc::now() + chrono::Duration::days(1), 100).await?;

    assert_eq!(deleted, 0);
    for id in [recorded.id, waiting.id, running.id, retrying.id] {
        assert!(exists(&pool, id).await?);
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_purge_deletes_at_most_its_limit(pool: PgPool) -> Checked {
    let mut expired = Vec::new();
    for _ in 0..3 {
        expired.push(finished_days_ago(&pool, created_days_ago(10), 9).await?);
    }
    let cutoff = chrono::Utc::now() - chrono::Duration::days(3);

    assert_eq!(purge_finished(&pool, cutoff, 2).await?, 2);
    assert_eq!(purge_finished(&pool, cutoff, 2).await?, 1);
    assert_eq!(purge_finished(&pool, cutoff, 2).await?, 0);
    for id in expired {
        assert!(!exists(&pool, id).await?);
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_command_a_concurrent_replay_made_unfinished_is_not_purged(pool: PgPool) -> Checked {
    use sqlx::Acquire as _;
    let held = claim_one(&pool, &queued(&pool, created_days_ago(10)).await?)
        .await?
        .expect("claimed");
    finish(&pool, &held, Outcome::Fail(error("boom"))).await?;
    sqlx::query("update commands set finished_at = now() - make_interval(days => 9) where id = $1")
        .bind(held.id)
        .execute(&pool)
        .await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(3);

    // The replay holds the row, uncommitted, while the purge runs: the purge must neither wait
    // for it (no sweep waits on a row lock) nor delete it; then the replay commits.
    let mut conn = pool.acquire().await?;
    let mut replaying = conn.begin().await?;
    cmdbus_store::replay(&mut *replaying, TENANT, held.id)
        .await?
        .expect("replayed");
    let deleted = tokio::time::timeout(NO_WAIT, purge_finished(&pool, cutoff, 100))
        .await
        .expect("the purge waited for the replay's row lock")?;
    replaying.commit().await?;
    assert_eq!(
        deleted, 0,
        "the purge deleted a command a replay had made unfinished"
    );
    let row = cmdbus_store::lookup(&pool, held.id)
        .await?
        .expect("the replayed command is still there");
    assert_eq!(status(&row), cmdbus_domain::Status::New);
    Ok(())
}
