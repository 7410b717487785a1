//! `finish`: the run's holder ends it. Success stores the result, failure the error (and the lane
//! it is parked in, owing its parking publish), each with the attempt's history; an outcome the
//! database cannot store fails the statement and leaves the run as it was.

use cmdbus_domain::Status;
use cmdbus_store::{Outcome, StoreError, heartbeat};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_success_stores_its_result_and_closes_the_attempt(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");

    let done = finish(&pool, &held, Outcome::Success(json!({"sent": 3}))).await?;

    assert_eq!(done.len(), 1);
    let done = &done[0];
    assert_eq!(status(done), Status::Success);
    assert_eq!(
        done.result.as_ref().map(|r| r.get()),
        Some(r#"{"sent": 3}"#)
    );
    assert_eq!(done.progress, Some(1.0));
    assert!(done.finished_at.is_some());
    assert_eq!(
        (done.claim, done.lease_until, done.redeliver_at),
        (None, None, None)
    );
    assert_eq!(
        done.worker.as_deref(),
        Some("worker-1"),
        "a finished row names who ran it"
    );
    assert!(done.version > held.version);
    assert_eq!(
        attempts(&pool, held.id).await?,
        vec![(
            0,
            1,
            "worker-1".to_owned(),
            Some("success".to_owned()),
            None
        )]
    );
    assert_eq!(
        every_column(&reload(&pool, held.id).await?),
        every_column(done)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failure_parked_in_a_lane_stores_its_error_and_owes_its_parking_publish(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let before = db_now(&pool).await?;

    let failed = finish_with_token(
        &pool,
        held.id,
        run(&held).claim,
        Outcome::Fail(error("card_declined")),
        Some("exceptions1"),
    )
    .await?;

    let failed = &failed[0];
    assert_eq!(status(failed), Status::Fail);
    assert_eq!(lane(failed).as_deref(), Some("exceptions1"));
    assert_eq!(
        failed.error_info().map(|e| e.code).as_deref(),
        Some("card_declined")
    );
    assert_eq!(failed.result.as_ref().map(|r| r.get()), None);
    let finished_at = failed.finished_at.expect("a failure is finished");
    assert!(finished_at >= before);
    assert_eq!(
        failed.redeliver_at,
        Some(finished_at + chrono::Duration::seconds(10)),
        "the parking publish is owed ten seconds on, not at once"
    );
    assert_eq!(
        attempts(&pool, held.id).await?,
        vec![(
            0,
            1,
            "worker-1".to_owned(),
            Some("fail".to_owned()),
            Some("card_declined".to_owned())
        )]
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failure_without_a_lane_owes_nothing(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");

    let failed = finish(&pool, &held, Outcome::Fail(error("boom"))).await?;

    assert_eq!(status(&failed[0]), Status::Fail);
    assert_eq!((lane(&failed[0]), failed[0].redeliver_at), (None, None));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn an_error_message_with_nul_characters_is_stored_without_them(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    let mut nul = error("bad\0code");
    nul.message = "line\0break".to_owned();

    let failed = finish(&pool, &held, Outcome::Fail(nul)).await?;

    let stored = failed[0].error_info().expect("an error is stored");
    assert_eq!(stored.code, "bad\u{fffd}code");
    assert_eq!(stored.message, "line\u{fffd}break");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_result_the_database_cannot_store_fails_and_leaves_the_run_holding(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");

    let refused = finish(&pool, &held, Outcome::Success(json!({"text": "a\u{0}b"}))).await;

    match refused {
        Err(error) => assert!(
            error.is_permanent(),
            "storing it again cannot succeed: {error}"
        ),
        Ok(rows) => panic!("a NUL character was stored: {rows:?}"),
    }
    assert_eq!(
        every_column(&reload(&pool, held.id).await?),
        every_column(&held)
    );
    assert_eq!(
        heartbeat(&pool, &[run(&held)], LEASE).await?.len(),
        1,
        "the run still holds"
    );
    let failed = finish(&pool, &held, Outcome::Fail(error("unstorable_result"))).await?;
    assert_eq!(status(&failed[0]), Status::Fail);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_run_stopped_by_its_cancel_ends_cancelled(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let held = claim_one(&pool, &waiting).await?.expect("claimed");
    cmdbus_store::cancel(&pool, TENANT, held.id)
        .await?
        .expect("cancel requested");

    let stopped = finish(&pool, &held, Outcome::Cancelled).await?;

    assert_eq!(status(&stopped[0]), Status::Cancelled);
    assert!(stopped[0].finished_at.is_some());
    assert_eq!(
        attempts(&pool, held.id).await?[0].3.as_deref(),
        Some("cancelled")
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_ends_the_runs_whose_tokens_hold_and_skips_the_others(pool: PgPool) -> Checked {
    let first = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let second = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let stale = cmdbus_store::Finish {
        id: second.id,
        claim: uuid::Uuid::now_v7(),
        outcome: Outcome::Success(json!("stale")),
        lane: None,
    };
    let good = cmdbus_store::Finish {
        id: first.id,
        claim: run(&first).claim,
        outcome: Outcome::Success(json!("good")),
        lane: None,
    };

    let done = cmdbus_store::finish(&pool, &[stale, good], REDELIVER_AFTER).await?;

    assert_eq!(
        done.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(status(&reload(&pool, second.id).await?), Status::Running);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn an_unstorable_outcome_in_a_batch_ends_none_of_it(pool: PgPool) -> Checked {
    // One statement ends the whole batch: a value it cannot store refuses every row of it.
    let first = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let second = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let finishes = [
        cmdbus_store::Finish {
            id: first.id,
            claim: run(&first).claim,
            outcome: Outcome::Success(json!("fine")),
            lane: None,
        },
        cmdbus_store::Finish {
            id: second.id,
            claim: run(&second).claim,
            outcome: Outcome::Success(json!("\u{0}")),
            lane: None,
        },
    ];

    let refused: Result<_, StoreError> =
        cmdbus_store::finish(&pool, &finishes, REDELIVER_AFTER).await;

    assert!(refused.is_err());
    assert_eq!(
        every_column(&reload(&pool, first.id).await?),
        every_column(&first)
    );
    Ok(())
}

/// A batched finish takes its rows' locks in id order whatever plan its update gets, as the
/// claim does (`claim::a_claim_locks_its_rows_in_id_order_whatever_the_plan`): with `a` locked
/// by another transaction, finishing `[a, b]` — `b` written first — holds nothing while it waits.
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finish_locks_its_rows_in_id_order_whatever_the_plan(pool: PgPool) -> Checked {
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let b = queued(&pool, cmdbus_store::NewCommand { id: b, ..command() }).await?;
    let a = queued(&pool, cmdbus_store::NewCommand { id: a, ..command() }).await?;
    // Claimed one at a time, `b` first: its running version is written first too.
    let mut claimed = Vec::new();
    for row in [&b, &a] {
        claimed.push(claim_one(&pool, row).await?.expect("claimed"));
    }
    let finishes: Vec<cmdbus_store::Finish> = claimed
        .iter()
        .map(|row| cmdbus_store::Finish {
            id: row.id,
            claim: run(row).claim,
            outcome: Outcome::Success(json!("done")),
            lane: None,
        })
        .collect();
    let planned = hash_joining(&pool).await?;
    let (b_free, finished) = other_free_while_waiting(&pool, a.id, b.id, async move {
        cmdbus_store::finish(&planned, &finishes, REDELIVER_AFTER).await
    })
    .await?;

    assert!(
        b_free.is_ok(),
        "the finish held b while it waited for a: {b_free:?}"
    );
    assert_eq!(finished.len(), 2, "both finish once a is free");
    Ok(())
}
