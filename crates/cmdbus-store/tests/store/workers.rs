//! The workers' heartbeat rows and the release rule: the runs of a worker silent for longer than
//! its `dead_after` are cut to its last heartbeat plus `dead_after` and reaped as any expired
//! lease is (with the same history and bounds); a live worker's, and a worker's without a row,
//! keep their lease; a held row is skipped, never waited for.

use crate::common::*;
use cmdbus_domain::Status;
use cmdbus_store::{
    WorkerBeat, hold_claim, list_workers, reap_expired, release_silent_workers, worker_gone,
    worker_seen,
};
use sqlx::{Connection, PgPool};
use std::time::Duration;

fn beat(id: &str) -> WorkerBeat {
    WorkerBeat {
        id: id.to_owned(),
        host: "box".to_owned(),
        pid: 7,
        version: "test".to_owned(),
        lane: None,
        concurrency: 4,
        dead_after: Duration::from_secs(5),
        stopping: false,
    }
}

/// A queued command claimed by `worker`, with the store's long test lease.
async fn running_on(
    pool: &PgPool,
    worker: &str,
) -> Result<cmdbus_store::CommandRow, cmdbus_store::StoreError> {
    let row = queued(pool, command()).await?;
    let mut claimed = claim(pool, &[delivery(&row)], worker).await?;
    Ok(claimed.pop().expect("claimed"))
}

/// Makes `worker`'s last heartbeat `ago` old by the database's clock.
async fn silent_for(pool: &PgPool, worker: &str, ago: Duration) -> Checked {
    sqlx::query(
        "update workers set last_seen_at = now() - make_interval(secs => $2) where id = $1",
    )
    .bind(worker)
    .bind(ago.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_silent_workers_runs_are_released_and_reaped_with_the_reason_in_their_history(
    pool: PgPool,
) -> Checked {
    for worker in ["dead", "alive"] {
        worker_seen(&pool, &beat(worker)).await?;
    }
    let dead = running_on(&pool, "dead").await?;
    let alive = running_on(&pool, "alive").await?;
    // A worker of a version without heartbeat rows: only its lease speaks for it.
    let rowless = running_on(&pool, "rowless").await?;
    silent_for(&pool, "dead", Duration::from_secs(10)).await?;

    assert_eq!(release_silent_workers(&pool).await?, 1);
    assert_eq!(release_silent_workers(&pool).await?, 0, "cut once");
    let cut = reload(&pool, dead.id).await?;
    let now = db_now(&pool).await?;
    assert!(
        cut.lease_until
            .is_some_and(|until| until <= now - chrono::Duration::seconds(4)),
        "the lease ends at the last heartbeat plus dead_after: {cut:?}"
    );
    assert_eq!(
        cut.version, dead.version,
        "nothing a client sees changed yet"
    );
    for untouched in [&alive, &rowless] {
        assert_eq!(
            reload(&pool, untouched.id).await?.lease_until,
            untouched.lease_until
        );
    }

    // The reaper takes it back as it takes any expired lease, with its usual grace.
    let reaped = reap_expired(&pool, Duration::from_secs(1), 2, None).await?;
    assert_eq!(
        reaped.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![dead.id]
    );
    let back = reload(&pool, dead.id).await?;
    assert_eq!(status(&back), Status::Queue);
    assert_eq!(back.lease_losses, 1);
    assert!(back.reclaimed_at.is_some(), "the view shows the reclaim");
    assert!(back.view().reclaimed_at.is_some());
    let history = attempts(&pool, dead.id).await?;
    assert_eq!(
        history,
        vec![(
            0,
            1,
            "dead".to_owned(),
            Some("lease_lost".to_owned()),
            Some("worker_lost".to_owned())
        )]
    );
    let attempt = cmdbus_store::attempts_of(&pool, dead.id).await?;
    let why = attempt[0].view().error.expect("why").message;
    assert!(why.contains("worker dead stopped heartbeating"), "{why}");

    // Only live workers are listed, with what they run.
    let listed = list_workers(&pool).await?;
    assert_eq!(
        listed
            .iter()
            .map(|w| (w.id.as_str(), w.running))
            .collect::<Vec<_>>(),
        vec![("alive", 1)]
    );
    worker_gone(&pool, "alive").await?;
    assert!(list_workers(&pool).await?.is_empty());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_run_held_in_hold_claim_is_skipped_then_released_once_free(pool: PgPool) -> Checked {
    worker_seen(&pool, &beat("dead")).await?;
    let held = running_on(&pool, "dead").await?;
    let other = running_on(&pool, "dead").await?;
    silent_for(&pool, "dead", Duration::from_secs(10)).await?;
    let mut handler = pool.acquire().await?;
    let mut effects = handler.begin().await?;
    assert!(hold_claim(&mut effects, run(&held)).await?);

    let released = tokio::time::timeout(NO_WAIT, release_silent_workers(&pool))
        .await
        .expect("the release waited for the handler's transaction")?;
    assert_eq!(released, 1, "the free run is released on time");
    assert_eq!(reload(&pool, held.id).await?.lease_until, held.lease_until);
    assert!(reload(&pool, other.id).await?.lease_until < other.lease_until);

    effects.commit().await?;
    assert_eq!(
        release_silent_workers(&pool).await?,
        1,
        "released once free"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_worker_that_beats_again_keeps_its_runs(pool: PgPool) -> Checked {
    worker_seen(&pool, &beat("paused")).await?;
    let row = running_on(&pool, "paused").await?;
    silent_for(&pool, "paused", Duration::from_secs(2)).await?;
    assert_eq!(release_silent_workers(&pool).await?, 0, "within dead_after");
    worker_seen(&pool, &beat("paused")).await?;
    assert_eq!(release_silent_workers(&pool).await?, 0);
    assert_eq!(reload(&pool, row.id).await?.lease_until, row.lease_until);
    Ok(())
}
