//! The fence: every write after a claim names the run's token, and a token that no longer holds
//! the command (a reaped run, an older generation, a made-up one) changes nothing at all.

use cmdbus_domain::Status;
use cmdbus_store::{Outcome, Run, heartbeat, hold_claim, progress, reap_expired, replay};
use serde_json::json;
use sqlx::{Acquire as _, PgPool};
use std::time::Duration;
use uuid::Uuid;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_made_up_token_can_neither_finish_nor_renew_nor_report_progress(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let forged = Run {
        id: held.id,
        claim: Uuid::now_v7(),
    };

    let finished = finish_with_token(
        &pool,
        held.id,
        forged.claim,
        Outcome::Success(json!(1)),
        None,
    )
    .await?;
    let renewed = heartbeat(&pool, &[forged], LEASE).await?;
    let reported = progress(&pool, forged, 0.5, Some("half")).await?;

    assert!(finished.is_empty());
    assert!(renewed.is_empty());
    assert!(reported.is_none());
    assert_eq!(
        every_column(&reload(&pool, held.id).await?),
        every_column(&held)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_run_that_lost_its_lease_cannot_finish_the_run_after_it(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let lost = claim_one(&pool, &waiting).await?.expect("claimed");
    end_lease(&pool, lost.id, Duration::from_secs(60)).await?;
    let reaped = reap_expired(&pool, Duration::ZERO, 5, None).await?;
    assert_eq!(reaped.len(), 1);
    let current = claim_one(&pool, &reaped[0])
        .await?
        .expect("the reaped command is claimed again");

    let late = finish(&pool, &lost, Outcome::Success(json!("late"))).await?;
    let late_beat = heartbeat(&pool, &[run(&lost)], LEASE).await?;
    let late_progress = progress(&pool, run(&lost), 0.9, None).await?;

    assert!(late.is_empty() && late_beat.is_empty() && late_progress.is_none());
    assert_eq!(
        every_column(&reload(&pool, current.id).await?),
        every_column(&current)
    );
    let done = finish(&pool, &current, Outcome::Success(json!("on time"))).await?;
    assert_eq!(status(&done[0]), Status::Success);
    assert_eq!(
        done[0].result.as_ref().map(|r| r.get()),
        Some("\"on time\"")
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_token_of_an_older_generation_cannot_touch_the_replay(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let old = claim_one(&pool, &waiting).await?.expect("claimed");
    finish(&pool, &old, Outcome::Fail(error("boom"))).await?;
    let replayed = replay(&pool, TENANT, old.id).await?.expect("replayed");
    let new = claim_one(&pool, &replayed)
        .await?
        .expect("the replay is claimed");

    assert!(
        finish(&pool, &old, Outcome::Success(json!(1)))
            .await?
            .is_empty()
    );
    assert!(heartbeat(&pool, &[run(&old)], LEASE).await?.is_empty());
    assert!(progress(&pool, run(&old), 0.1, None).await?.is_none());
    assert_eq!(
        every_column(&reload(&pool, new.id).await?),
        every_column(&new)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finished_run_cannot_be_finished_twice(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let first = finish(&pool, &held, Outcome::Success(json!("first"))).await?;

    let second = finish(&pool, &held, Outcome::Fail(error("second"))).await?;

    assert!(second.is_empty());
    assert_eq!(
        every_column(&reload(&pool, held.id).await?),
        every_column(&first[0])
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_heartbeat_renews_the_lease_without_a_visible_change(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    end_lease(&pool, held.id, Duration::from_secs(1)).await?;

    let renewed = heartbeat(&pool, &[run(&held)], LEASE).await?;

    assert_eq!(renewed, vec![(run(&held).claim, false, true)]);
    let after = reload(&pool, held.id).await?;
    assert!(after.lease_until > Some(db_now(&pool).await? + chrono::Duration::seconds(250)));
    assert_eq!(
        after.version, held.version,
        "clients need not see a heartbeat"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn progress_is_clamped_and_its_note_loses_nul_characters(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");

    let over = progress(&pool, run(&held), 1.5, Some("a\0b"))
        .await?
        .expect("fenced by a live token");
    assert_eq!(over.progress, Some(1.0));
    assert_eq!(over.progress_note.as_deref(), Some("a\u{fffd}b"));
    assert!(over.version > held.version, "progress is a visible change");
    let nan = progress(&pool, run(&held), f32::NAN, None)
        .await?
        .expect("fenced by a live token");
    assert_eq!(nan.progress, Some(0.0));
    assert_eq!(nan.progress_note, None);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn hold_claim_answers_for_a_live_lease_only(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let mut conn = pool.acquire().await?;

    assert!(hold_claim(&mut conn, run(&held)).await?);
    let forged = Run {
        id: held.id,
        claim: Uuid::now_v7(),
    };
    assert!(!hold_claim(&mut conn, forged).await?);
    end_lease(&pool, held.id, Duration::from_secs(1)).await?;
    assert!(
        !hold_claim(&mut conn, run(&held)).await?,
        "an ended lease holds nothing"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_held_claim_keeps_a_cancel_out_until_the_handler_commits(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let mut handler = pool.acquire().await?;
    let mut effects = handler.begin().await?;
    assert!(hold_claim(&mut effects, run(&held)).await?);

    // The cancel would wait for the handler's lock: told not to wait, it fails instead.
    let mut operator = pool.begin().await?;
    sqlx::query("set local lock_timeout = '50ms'")
        .execute(&mut *operator)
        .await?;
    let blocked = cmdbus_store::cancel(&mut *operator, TENANT, held.id).await;
    let code = match &blocked {
        Err(cmdbus_store::StoreError::Database(sqlx::Error::Database(db))) => {
            db.code().map(|c| c.into_owned())
        }
        other => panic!("the cancel went through a held claim: {other:?}"),
    };
    assert_eq!(code.as_deref(), Some("55P03"), "lock_not_available");
    operator.rollback().await?;

    effects.commit().await?;
    let cancelled = cmdbus_store::cancel(&pool, TENANT, held.id)
        .await?
        .expect("cancel after commit");
    assert!(cancelled.cancel_requested);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finish_racing_the_reaper_over_an_ended_lease_is_the_only_outcome(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    end_lease(&pool, held.id, Duration::from_secs(60)).await?;
    let mut conn = pool.acquire().await?;
    let mut finishing = conn.begin().await?;
    let finished = cmdbus_store::finish(
        &mut *finishing,
        &[cmdbus_store::Finish {
            id: held.id,
            claim: run(&held).claim,
            outcome: Outcome::Success(json!("late but fenced")),
            lane: None,
        }],
        REDELIVER_AFTER,
    )
    .await?;
    assert_eq!(
        finished.len(),
        1,
        "a run that still holds its token may finish past its lease"
    );

    // The reaper skips the row the finish holds (it never waits on a row lock), and finds it
    // finished once the finish committed.
    let while_finishing = reap_expired(&pool, Duration::ZERO, 5, None).await?;
    finishing.commit().await?;
    let reaped = reap_expired(&pool, Duration::ZERO, 5, None).await?;

    assert!(
        while_finishing.is_empty() && reaped.is_empty(),
        "the reaper took a finished run: {while_finishing:?} {reaped:?}"
    );
    let row = reload(&pool, held.id).await?;
    assert_eq!((status(&row), row.lease_losses), (Status::Success, 0));
    assert_eq!(
        attempts(&pool, held.id).await?[0].3.as_deref(),
        Some("success")
    );
    Ok(())
}

/// How long a statement that should not wait at all may take before the test calls it blocked:
/// a failure detector, not a synchronisation.

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_held_claim_never_delays_another_runs_lease(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let other = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    end_lease(&pool, other.id, Duration::from_secs(1)).await?;
    let mut handler = pool.acquire().await?;
    let mut effects = handler.begin().await?;
    assert!(hold_claim(&mut effects, run(&held)).await?);

    let renewed =
        tokio::time::timeout(NO_WAIT, heartbeat(&pool, &[run(&held), run(&other)], LEASE))
            .await
            .expect("the renewal waited for the handler's transaction")?;

    assert!(
        renewed.contains(&(run(&other).claim, false, true)),
        "the other run is renewed at once: {renewed:?}"
    );
    assert!(
        renewed.contains(&(run(&held).claim, false, false)),
        "the held run is still ours, not renewed yet: {renewed:?}"
    );
    let after = reload(&pool, other.id).await?;
    assert!(after.lease_until > Some(db_now(&pool).await? + chrono::Duration::seconds(250)));

    effects.commit().await?;
    assert_eq!(
        heartbeat(&pool, &[run(&held)], LEASE).await?,
        vec![(run(&held).claim, false, true)],
        "the next renewal after the handler's commit renews the held run"
    );
    Ok(())
}
