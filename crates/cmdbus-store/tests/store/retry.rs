//! Retries and releases: a run ending in `queue` waits for its next attempt (retry) or is given
//! back without spending one (release); the attempt budget — runs started, less lost and released
//! ones, against `max_attempts` — is what the claim checks.

use cmdbus_domain::Status;
use cmdbus_store::{Outcome, Refusal, reap_expired};
use sqlx::PgPool;
use std::time::Duration;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_retry_goes_back_to_the_queue_due_after_its_delay(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let before = db_now(&pool).await?;

    let retried = finish(
        &pool,
        &held,
        Outcome::Retry(error("flaky"), Duration::from_secs(30)),
    )
    .await?;

    let retried = &retried[0];
    assert_eq!(status(retried), Status::Queue);
    let due = retried.next_attempt_at.expect("a retry is due");
    assert!(due >= before + chrono::Duration::seconds(30));
    assert_eq!(
        retried.redeliver_at,
        Some(due + chrono::Duration::seconds(60)),
        "the sweep looks again {REDELIVER_AFTER:?} past the due time"
    );
    assert_eq!(
        (
            retried.worker.as_deref(),
            retried.claim,
            retried.finished_at
        ),
        (None, None, None)
    );
    assert_eq!(
        retried.error_info().map(|e| e.code).as_deref(),
        Some("flaky")
    );
    assert_eq!(retried.spent_attempts(), 1);
    assert_eq!(
        attempts(&pool, held.id).await?,
        vec![(
            0,
            1,
            "worker-1".to_owned(),
            Some("retry".to_owned()),
            Some("flaky".to_owned())
        )]
    );

    let again = claim_one(&pool, retried)
        .await?
        .expect("a retry is claimed again");
    assert_eq!(again.attempt, 2);
    assert_eq!(again.next_attempt_at, None);
    assert_eq!(
        again.error_info().map(|e| e.code).as_deref(),
        Some("flaky"),
        "the last error stays"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_command_whose_attempts_are_used_up_is_not_claimed(pool: PgPool) -> Checked {
    let waiting = queued(
        &pool,
        cmdbus_store::NewCommand {
            max_attempts: 2,
            ..command()
        },
    )
    .await?;
    let mut row = waiting;
    for attempt in 1..=2 {
        let held = claim_one(&pool, &row).await?.expect("within the budget");
        assert_eq!(held.attempt, attempt);
        row = finish(&pool, &held, Outcome::Retry(error("flaky"), Duration::ZERO))
            .await?
            .remove(0);
    }
    assert!(!row.has_attempts_left());

    assert_eq!(
        refusal(&pool, delivery(&row)).await?,
        Refusal::Exhausted,
        "a third attempt of two"
    );
    assert_eq!(
        every_column(&reload(&pool, row.id).await?),
        every_column(&row)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_release_gives_the_command_back_without_spending_an_attempt(pool: PgPool) -> Checked {
    let waiting = queued(
        &pool,
        cmdbus_store::NewCommand {
            max_attempts: 1,
            ..command()
        },
    )
    .await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");

    let released = finish(&pool, &held, Outcome::Released).await?.remove(0);

    assert_eq!(status(&released), Status::Queue);
    assert_eq!(
        (
            released.attempt,
            released.releases,
            released.spent_attempts()
        ),
        (1, 1, 0)
    );
    assert!(released.has_attempts_left());
    let now = db_now(&pool).await?;
    assert!(
        released.next_attempt_at.is_some_and(|at| at <= now),
        "due at once"
    );
    assert_eq!(
        attempts(&pool, held.id).await?[0].3.as_deref(),
        Some("released")
    );
    let again = claim_one(&pool, &released)
        .await?
        .expect("the only attempt is still owed");
    assert_eq!(again.attempt, 2);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_lost_lease_does_not_spend_an_attempt(pool: PgPool) -> Checked {
    let waiting = queued(
        &pool,
        cmdbus_store::NewCommand {
            max_attempts: 1,
            ..command()
        },
    )
    .await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    end_lease(&pool, held.id, Duration::from_secs(1)).await?;
    let reaped = reap_expired(&pool, Duration::ZERO, 5, None)
        .await?
        .remove(0);

    assert_eq!(
        (reaped.attempt, reaped.lease_losses, reaped.spent_attempts()),
        (1, 1, 0)
    );
    assert!(claim_one(&pool, &reaped).await?.is_some());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_retry_or_release_after_a_cancel_request_ends_cancelled(pool: PgPool) -> Checked {
    for outcome in [
        Outcome::Retry(error("flaky"), Duration::from_secs(5)),
        Outcome::Released,
    ] {
        let name = outcome.name();
        let held = claim_one(&pool, &queued(&pool, command()).await?)
            .await?
            .expect("claimed");
        cmdbus_store::cancel(&pool, TENANT, held.id)
            .await?
            .expect("cancel requested");

        let ended = finish(&pool, &held, outcome).await?.remove(0);

        assert_eq!(status(&ended), Status::Cancelled, "{name}");
        assert!(ended.finished_at.is_some(), "{name}");
        assert_eq!(
            (ended.next_attempt_at, ended.redeliver_at),
            (None, None),
            "{name}: nothing owed"
        );
        assert_eq!(ended.worker.as_deref(), Some("worker-1"), "{name}");
        assert_eq!(
            attempts(&pool, held.id).await?[0].3.as_deref(),
            Some("cancelled"),
            "{name}"
        );
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_released_run_of_an_exception_lane_can_be_claimed_again(pool: PgPool) -> Checked {
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

    let released = finish(&pool, &rerun, Outcome::Released).await?.remove(0);
    assert_eq!(
        (status(&released), lane(&released).as_deref()),
        (Status::Fail, Some("exceptions1")),
        "back to its lane, as the reaper sends a lost lane run"
    );
    assert!(
        released.redeliver_at.is_some(),
        "its parking publish is owed"
    );

    let by_anyone = claim(&pool, &[delivery(&released)], "worker-1").await?;
    let by_its_lane = if by_anyone.is_empty() {
        claim_in(
            &pool,
            &[delivery(&released)],
            "operator",
            Some("exceptions1"),
        )
        .await?
    } else {
        by_anyone
    };
    assert_eq!(
        by_its_lane.len(),
        1,
        "released as {:?} in lane {:?} with {} of {} attempts spent: nobody can claim it",
        released.status,
        lane(&released),
        released.spent_attempts(),
        released.max_attempts
    );
    Ok(())
}
