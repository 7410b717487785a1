//! The api's sweeps: what the outbox relay and the redelivery sweep select, and how their short
//! publish lease keeps two sweepers from taking the same row.

use cmdbus_domain::Status;
use cmdbus_store::{
    Outcome, count_unfinished, mark_queued, redelivered, take_redeliveries, take_unpublished,
};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use crate::common::*;

/// How long a sweeper holds the rows it took while it publishes them.
const PUBLISH_LEASE: Duration = Duration::from_secs(20);

/// Moves the creation of command `id` back by `ago`.
async fn recorded_ago(pool: &PgPool, id: Uuid, ago: Duration) -> Checked {
    sqlx::query("update commands set created_at = now() - make_interval(secs => $2) where id = $1")
        .bind(id)
        .bind(ago.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}

/// Makes command `id`'s redelivery due `ago`.
async fn due_ago(pool: &PgPool, id: Uuid, ago: Duration) -> Checked {
    sqlx::query(
        "update commands set redeliver_at = now() - make_interval(secs => $2) where id = $1",
    )
    .bind(id)
    .bind(ago.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

fn ids(rows: &[cmdbus_store::CommandRow]) -> Vec<Uuid> {
    rows.iter().map(|row| row.id).collect()
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_relay_takes_old_unconfirmed_rows_oldest_first_once_per_publish_lease(
    pool: PgPool,
) -> Checked {
    let older = submit_one(&pool, command()).await?;
    let old = submit_one(&pool, command()).await?;
    let young = submit_one(&pool, command()).await?;
    let confirmed = submit_one(&pool, command()).await?;
    recorded_ago(&pool, older.id, Duration::from_secs(120)).await?;
    recorded_ago(&pool, old.id, Duration::from_secs(90)).await?;
    recorded_ago(&pool, confirmed.id, Duration::from_secs(120)).await?;
    mark_queued(&pool, &[confirmed.id], REDELIVER_AFTER).await?;
    let before = db_now(&pool).await?;

    let first = take_unpublished(&pool, Duration::from_secs(30), PUBLISH_LEASE, 1).await?;
    let rest = take_unpublished(&pool, Duration::from_secs(30), PUBLISH_LEASE, 10).await?;
    let again = take_unpublished(&pool, Duration::from_secs(30), PUBLISH_LEASE, 10).await?;

    assert_eq!(ids(&first), vec![older.id]);
    assert_eq!(ids(&rest), vec![old.id]);
    assert!(
        again.is_empty(),
        "taken rows are held for the publish lease"
    );
    assert!(
        first[0]
            .redeliver_at
            .is_some_and(|at| at >= before + chrono::Duration::seconds(20))
    );
    assert_eq!(status(&first[0]), Status::New);
    assert_eq!(
        first[0].version, older.version,
        "taking a row is no visible change"
    );
    assert_eq!(
        every_column(&reload(&pool, young.id).await?),
        every_column(&young)
    );

    due_ago(&pool, older.id, Duration::from_secs(1)).await?;
    let retaken = take_unpublished(&pool, Duration::from_secs(30), PUBLISH_LEASE, 10).await?;
    assert_eq!(
        ids(&retaken),
        vec![older.id],
        "a publish lease that ended frees the row"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn redelivery_takes_overdue_queue_rows_and_owed_parkings(pool: PgPool) -> Checked {
    let overdue = queued(&pool, command()).await?;
    let not_yet = queued(&pool, command()).await?;
    let parked = parked(&pool, command(), "exceptions1").await?;
    let running = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    due_ago(&pool, overdue.id, Duration::from_secs(1)).await?;
    due_ago(&pool, parked.id, Duration::from_secs(1)).await?;

    let taken = take_redeliveries(&pool, PUBLISH_LEASE, 10).await?;
    let again = take_redeliveries(&pool, PUBLISH_LEASE, 10).await?;

    let mut taken_ids = ids(&taken);
    taken_ids.sort();
    let mut expected = vec![overdue.id, parked.id];
    expected.sort();
    assert_eq!(taken_ids, expected);
    assert!(
        again.is_empty(),
        "taken rows are held for the publish lease"
    );
    assert_eq!(
        every_column(&reload(&pool, not_yet.id).await?),
        every_column(&not_yet)
    );
    assert_eq!(
        every_column(&reload(&pool, running.id).await?),
        every_column(&running)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn redelivery_skips_a_command_waiting_for_its_predecessor(pool: PgPool) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    due_ago(&pool, earlier.id, Duration::from_secs(1)).await?;
    due_ago(&pool, later.id, Duration::from_secs(1)).await?;

    let taken = take_redeliveries(&pool, PUBLISH_LEASE, 10).await?;

    assert_eq!(ids(&taken), vec![earlier.id]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn redelivery_skips_a_replayed_command_while_a_later_one_of_its_key_runs(
    pool: PgPool,
) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    let run = claim_one(&pool, &earlier).await?.expect("claimed");
    finish(&pool, &run, Outcome::Fail(error("boom"))).await?;
    let running = claim_one(&pool, &later).await?.expect("handed on");
    let replayed = cmdbus_store::replay(&pool, TENANT, earlier.id)
        .await?
        .expect("replayed");
    mark_queued(&pool, &[replayed.id], REDELIVER_AFTER).await?;
    due_ago(&pool, replayed.id, Duration::from_secs(1)).await?;

    let while_running = take_redeliveries(&pool, PUBLISH_LEASE, 10).await?;
    finish(&pool, &running, Outcome::Success(serde_json::json!(null))).await?;
    let after = take_redeliveries(&pool, PUBLISH_LEASE, 10).await?;

    assert_eq!(ids(&while_running), Vec::<Uuid>::new());
    assert_eq!(
        ids(&after),
        vec![replayed.id],
        "its turn once the later one finished"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_confirmed_redelivery_waits_again_and_a_confirmed_parking_owes_nothing(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let parked = parked(&pool, command(), "exceptions1").await?;
    let running = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let before = db_now(&pool).await?;

    redelivered(
        &pool,
        &[waiting.id, parked.id, running.id],
        Duration::from_secs(600),
    )
    .await?;

    let waiting = reload(&pool, waiting.id).await?;
    assert!(
        waiting
            .redeliver_at
            .is_some_and(|at| at >= before + chrono::Duration::seconds(600))
    );
    assert_eq!(reload(&pool, parked.id).await?.redeliver_at, None);
    assert_eq!(
        every_column(&reload(&pool, running.id).await?),
        every_column(&running)
    );
    Ok(())
}

/// A command queued long ago is looked at again after as long as it has waited (at most eight
/// intervals), so a backlog's waiting commands are not each copied every interval.
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_redelivery_waits_as_long_again_as_the_command_has_been_queued_within_bounds(
    pool: PgPool,
) -> Checked {
    let interval = Duration::from_secs(10);
    let fresh = queued(&pool, command()).await?;
    let older = queued(&pool, command()).await?;
    let ancient = queued(&pool, command()).await?;
    for (row, ago) in [(&older, 30), (&ancient, 3_600)] {
        sqlx::query(
            "update commands set queued_at = now() - make_interval(secs => $2) where id = $1",
        )
        .bind(row.id)
        .bind(f64::from(ago))
        .execute(&pool)
        .await?;
    }
    let before = db_now(&pool).await?;

    redelivered(&pool, &[fresh.id, older.id, ancient.id], interval).await?;

    let wait = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|at| (at - before).num_seconds());
    let waits = [
        wait(reload(&pool, fresh.id).await?.redeliver_at),
        wait(reload(&pool, older.id).await?.redeliver_at),
        wait(reload(&pool, ancient.id).await?.redeliver_at),
    ];
    assert!(
        matches!(waits, [Some(10..=11), Some(30..=31), Some(80..=81)]),
        "the interval, the age, eight intervals: {waits:?}"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_unfinished_are_counted_by_state(pool: PgPool) -> Checked {
    submit_one(&pool, command()).await?;
    queued(&pool, command()).await?;
    queued(&pool, command()).await?;
    claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let done = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(&pool, &done, Outcome::Success(serde_json::json!(1))).await?;

    let mut counts = count_unfinished(&pool).await?;
    counts.sort();

    assert_eq!(
        counts,
        vec![
            ("new".to_owned(), 1),
            ("queue".to_owned(), 2),
            ("running".to_owned(), 1),
            ("scheduled".to_owned(), 0)
        ]
    );
    Ok(())
}

/// Recording redelivered rows takes their locks in id order whatever the plan (a sequential or
/// bitmap scan visits rows in the table's order), as a claim does: with `a` locked, recording
/// `[a, b]` — `b` written first — holds nothing while it waits.
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn recording_redelivered_rows_locks_them_in_id_order_whatever_the_plan(
    pool: PgPool,
) -> Checked {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let b = queued(&pool, cmdbus_store::NewCommand { id: b, ..command() }).await?;
    let a = queued(&pool, cmdbus_store::NewCommand { id: a, ..command() }).await?;
    let planned = hash_joining(&pool).await?;
    let ids = [a.id, b.id];
    let (b_free, ()) = other_free_while_waiting(&pool, a.id, b.id, async move {
        redelivered(&planned, &ids, REDELIVER_AFTER).await
    })
    .await?;
    assert!(
        b_free.is_ok(),
        "recording held b while it waited for a: {b_free:?}"
    );
    Ok(())
}
