//! `reap_expired`: a run whose lease ended more than `grace` ago loses it. The command goes back
//! to the queue (due for redelivery at once), or ends cancelled when a cancel was requested, or
//! fails as `lease_lost` once it lost too many leases (parked in the next lane, in every lane
//! alike); a run of an exception lane within the bound goes back to its lane. A claim never takes a run away by itself, however stale its lease.

use cmdbus_domain::Status;
use cmdbus_store::{Refusal, hold_claim, reap_expired, take_redeliveries, take_unpublished};
use sqlx::{Acquire as _, PgPool};
use std::time::Duration;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn an_expired_lease_is_reaped_back_to_the_queue_and_claimed_again(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    end_lease(&pool, held.id, Duration::from_secs(60)).await?;
    assert_eq!(
        refusal(&pool, delivery(&held)).await?,
        Refusal::Duplicate,
        "only the reaper takes a run away"
    );

    let reaped = reap_expired(&pool, Duration::from_secs(30), 5, None).await?;

    assert_eq!(reaped.len(), 1);
    let back = &reaped[0];
    assert_eq!(status(back), Status::Queue);
    assert_eq!(
        (back.worker.as_deref(), back.claim, back.lease_until),
        (None, None, None)
    );
    assert_eq!(back.lease_losses, 1);
    assert_eq!(back.finished_at, None);
    let now = db_now(&pool).await?;
    assert!(
        back.redeliver_at.is_some_and(|at| at <= now),
        "due for redelivery at once"
    );
    assert!(back.version > held.version, "a reap is a visible change");
    assert_eq!(
        attempts(&pool, held.id).await?[0].3.as_deref(),
        Some("lease_lost")
    );

    let again = claim(&pool, &[delivery(back)], "worker-2").await?;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].attempt, again[0].worker.as_deref()),
        (2, Some("worker-2"))
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_live_lease_or_one_within_its_grace_is_not_reaped(pool: PgPool) -> Checked {
    let live = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let in_grace = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    end_lease(&pool, in_grace.id, Duration::from_secs(10)).await?;
    let in_grace = reload(&pool, in_grace.id).await?;

    assert!(
        reap_expired(&pool, Duration::from_secs(60), 5, None)
            .await?
            .is_empty()
    );
    assert_eq!(
        every_column(&reload(&pool, live.id).await?),
        every_column(&live)
    );
    assert_eq!(
        every_column(&reload(&pool, in_grace.id).await?),
        every_column(&in_grace)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_reaper_judges_leases_by_the_clock_it_is_given(pool: PgPool) -> Checked {
    let live = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let lease_until = live.lease_until.expect("a lease");

    let early = reap_expired(&pool, Duration::ZERO, 5, Some(lease_until)).await?;
    let late = reap_expired(
        &pool,
        Duration::ZERO,
        5,
        Some(lease_until + chrono::Duration::milliseconds(1)),
    )
    .await?;

    assert!(early.is_empty(), "a lease ending now is not yet expired");
    assert_eq!(
        late.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![live.id]
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn too_many_lost_leases_fail_the_command_as_lease_lost(pool: PgPool) -> Checked {
    let mut row = queued(&pool, command()).await?;
    for losses in 0..=2 {
        let held = claim_one(&pool, &row)
            .await?
            .expect("claimable until it fails");
        end_lease(&pool, held.id, Duration::from_secs(1)).await?;
        row = reap_expired(&pool, Duration::ZERO, 2, None)
            .await?
            .remove(0);
        assert_eq!(row.lease_losses, losses + 1);
    }

    assert_eq!(status(&row), Status::Fail);
    assert_eq!(lane(&row).as_deref(), Some("exceptions1"));
    let lost = row.error_info().expect("an error");
    assert_eq!((lost.code.as_str(), lost.retryable), ("lease_lost", false));
    assert!(lost.message.contains("3 times"), "{}", lost.message);
    assert!(row.finished_at.is_some());
    assert!(row.redeliver_at.is_some(), "the parking publish is owed");
    assert_eq!(row.spent_attempts(), 0, "lost runs spend no attempt");
    assert_eq!(
        refusal(&pool, delivery(&row)).await?,
        Refusal::Duplicate,
        "failed for good"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_reaped_run_whose_cancel_was_requested_ends_cancelled(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    cmdbus_store::cancel(&pool, TENANT, held.id)
        .await?
        .expect("cancel requested");
    end_lease(&pool, held.id, Duration::from_secs(1)).await?;

    let reaped = reap_expired(&pool, Duration::ZERO, 5, None)
        .await?
        .remove(0);

    assert_eq!(status(&reaped), Status::Cancelled);
    assert!(reaped.finished_at.is_some());
    assert_eq!((lane(&reaped), reaped.redeliver_at), (None, None));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_reaped_run_of_an_exception_lane_goes_back_to_its_lane(pool: PgPool) -> Checked {
    let parked = parked(&pool, command(), "exceptions2").await?;
    let rerun = claim_in(&pool, &[delivery(&parked)], "operator", Some("exceptions2"))
        .await?
        .remove(0);
    end_lease(&pool, rerun.id, Duration::from_secs(1)).await?;

    let reaped = reap_expired(&pool, Duration::ZERO, 5, None)
        .await?
        .remove(0);

    assert_eq!(status(&reaped), Status::Fail);
    assert_eq!(lane(&reaped).as_deref(), Some("exceptions2"));
    assert_eq!(
        reaped.error_info().map(|e| e.code).as_deref(),
        Some("boom"),
        "its error stays"
    );
    assert!(reaped.finished_at.is_some());
    assert!(
        reaped.redeliver_at.is_some(),
        "parked again: the publish is owed"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_lane_run_that_loses_too_many_leases_fails_on_to_the_next_lane(pool: PgPool) -> Checked {
    // The case: `max_attempts` 1 and no lease loss allowed. The lane re-runs it once;
    // that run is lost: the bound holds in the lane as in the main queue, so it fails as
    // `lease_lost` and moves on to the next lane instead of being parked in its own lane again
    // (where its lane's worker would run it again, and again, with no bound).
    let parked = parked(
        &pool,
        cmdbus_store::NewCommand {
            max_attempts: 1,
            ..command()
        },
        "exceptions1",
    )
    .await?;
    let rerun = claim_in(&pool, &[delivery(&parked)], "operator", Some("exceptions1"))
        .await?
        .remove(0);
    end_lease(&pool, rerun.id, Duration::from_secs(1)).await?;

    let reaped = reap_expired(&pool, Duration::ZERO, 0, None)
        .await?
        .remove(0);

    assert_eq!(status(&reaped), Status::Fail);
    assert_eq!(
        lane(&reaped).as_deref(),
        Some("exceptions2"),
        "not its own lane again"
    );
    let lost = reaped.error_info().expect("an error");
    assert_eq!((lost.code.as_str(), lost.retryable), ("lease_lost", false));
    assert!(reaped.redeliver_at.is_some(), "the parking publish is owed");
    assert!(
        claim_in(&pool, &[delivery(&reaped)], "operator", Some("exceptions1"))
            .await?
            .is_empty(),
        "its own lane cannot run it again"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_held_row_stalls_no_sweep_and_cannot_be_reaped_while_held(pool: PgPool) -> Checked {
    // A failure detector for a sweep that waits on the lock, not a synchronisation.
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let dead = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let unpublished = submit_one(&pool, command()).await?;
    let overdue = queued(&pool, command()).await?;
    sqlx::query(
        "update commands set created_at = now() - interval '1 hour',
                             redeliver_at = now() - interval '1 minute'
          where id = any($1)",
    )
    .bind(vec![unpublished.id, overdue.id])
    .execute(&pool)
    .await?;
    let mut handler = pool.acquire().await?;
    let mut effects = handler.begin().await?;
    assert!(hold_claim(&mut effects, run(&held)).await?);
    // Both leases look long ended to the reaper: the held run's paused handler outlived its lease.
    let later = Some(db_now(&pool).await? + chrono::Duration::hours(1));

    let reaped = tokio::time::timeout(NO_WAIT, reap_expired(&pool, Duration::ZERO, 5, later))
        .await
        .expect("the reaper waited for the handler's transaction")?;
    let relayed = tokio::time::timeout(
        NO_WAIT,
        take_unpublished(&pool, Duration::from_secs(30), LEASE, 10),
    )
    .await
    .expect("the relay waited")?;
    let redelivered = tokio::time::timeout(NO_WAIT, take_redeliveries(&pool, LEASE, 10))
        .await
        .expect("the redelivery sweep waited")?;

    let ids = |rows: &[cmdbus_store::CommandRow]| {
        let mut ids: Vec<_> = rows.iter().map(|r| r.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&reaped),
        vec![dead.id],
        "the dead run is reaped on time"
    );
    assert_eq!(ids(&relayed), vec![unpublished.id]);
    assert_eq!(
        ids(&redelivered),
        {
            let mut both = vec![overdue.id, dead.id];
            both.sort();
            both
        },
        "the reaped run is published again at once"
    );
    let row = reload(&pool, held.id).await?;
    assert_eq!(
        (status(&row), row.claim),
        (Status::Running, held.claim),
        "a held claim is not taken away while its transaction is open"
    );

    effects.commit().await?;
    let reaped = reap_expired(&pool, Duration::ZERO, 5, later).await?;
    assert_eq!(ids(&reaped), vec![held.id], "reaped once the lock is gone");
    Ok(())
}
