//! `delayed`: a command with a `run_at` to come is recorded `scheduled`, is neither claimable nor
//! counted in its key's order while it waits, and the sweep's statement releases exactly the due
//! ones, earliest first, in batches, each once however many sweepers run; it can be re-timed or
//! cancelled until then, and never after.

use chrono::{Duration as Span, Utc};
use cmdbus_domain::Status;
use cmdbus_store::{
    NewCommand, Outcome, Refusal, cancel, count_unfinished_of, release_due, reschedule,
};
use sqlx::PgPool;
use std::time::Duration;

use crate::common::*;

/// How long a released row is left to the sweeper that took it.
const PUBLISH_LEASE: Duration = Duration::from_secs(10);

fn due_in(seconds: i64) -> NewCommand {
    NewCommand {
        run_at: Some(Utc::now() + Span::seconds(seconds)),
        ..command()
    }
}

/// Moves a scheduled row's `run_at` into the past, as the clock would.
async fn make_due(pool: &PgPool, id: uuid::Uuid) {
    sqlx::query("update commands set run_at = now() - interval '1 second' where id = $1")
        .bind(id)
        .execute(pool)
        .await
        .expect("make due");
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_run_at_to_come_is_recorded_scheduled_and_a_past_one_new(pool: PgPool) -> Checked {
    let later = submit_one(&pool, due_in(3600)).await?;
    let past = submit_one(&pool, due_in(-5)).await?;
    let now = submit_one(&pool, command()).await?;

    assert_eq!(status(&later), Status::Scheduled);
    assert!(later.run_at.is_some() && later.view().run_at == later.run_at);
    assert_eq!(
        status(&past),
        Status::New,
        "a time already past runs at once"
    );
    assert_eq!(status(&now), Status::New);
    assert_eq!(now.run_at, None);
    // It is unfinished work of the tenant: the quota counts it.
    assert_eq!(count_unfinished_of(&pool, TENANT).await?, 3);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_scheduled_command_is_not_claimable(pool: PgPool) -> Checked {
    let later = submit_one(&pool, due_in(3600)).await?;

    // A stray message (there is none: nothing is published while it waits) claims nothing.
    assert_eq!(refusal(&pool, delivery(&later)).await?, Refusal::Duplicate);
    assert_eq!(
        status(&reload(&pool, later.id).await?),
        Status::Scheduled,
        "left as it was"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_sweep_releases_only_due_rows_earliest_first_in_batches(pool: PgPool) -> Checked {
    let later = submit_one(&pool, due_in(3600)).await?;
    let mut due = Vec::new();
    for _ in 0..5 {
        let row = submit_one(&pool, due_in(3600)).await?;
        make_due(&pool, row.id).await;
        due.push(row);
    }
    assert!(
        release_due(&pool, PUBLISH_LEASE, 10).await.is_ok(),
        "statement runs"
    );
    // The five were released by the statement above; none is left, and the later one waits.
    let again = release_due(&pool, PUBLISH_LEASE, 10).await?;
    assert!(again.is_empty(), "each row is released once");
    for row in &due {
        let released = reload(&pool, row.id).await?;
        assert_eq!(status(&released), Status::New);
        assert!(released.version > row.version, "a visible change");
        assert!(
            released.redeliver_at.is_some(),
            "a publish lease, so the relay waits for this sweeper"
        );
    }
    assert_eq!(status(&reload(&pool, later.id).await?), Status::Scheduled);

    // A batch takes at most its limit, the earliest due first.
    let mut waiting = Vec::new();
    for seconds in [30, 10, 20] {
        let row = submit_one(&pool, due_in(3600)).await?;
        sqlx::query("update commands set run_at = now() - make_interval(secs => $2) where id = $1")
            .bind(row.id)
            .bind(f64::from(seconds))
            .execute(&pool)
            .await?;
        waiting.push(row);
    }
    let first = release_due(&pool, PUBLISH_LEASE, 2).await?;
    let mut ids: Vec<_> = first.iter().map(|row| row.id).collect();
    ids.sort();
    let mut earliest = vec![waiting[0].id, waiting[2].id];
    earliest.sort();
    assert_eq!(ids, earliest, "the two due longest");
    let rest = release_due(&pool, PUBLISH_LEASE, 2).await?;
    assert_eq!(
        rest.iter().map(|row| row.id).collect::<Vec<_>>(),
        [waiting[1].id]
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn sweepers_side_by_side_release_each_row_once(pool: PgPool) -> Checked {
    for _ in 0..300 {
        let row = submit_one(&pool, due_in(3600)).await?;
        make_due(&pool, row.id).await;
    }
    let sweepers = (0..4).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = release_due(&pool, PUBLISH_LEASE, 25).await?;
                if rows.is_empty() {
                    return Ok::<_, cmdbus_store::StoreError>(mine);
                }
                mine.extend(rows.into_iter().map(|row| row.id));
            }
        })
    });
    let mut all = Vec::new();
    for sweeper in sweepers {
        all.extend(sweeper.await.expect("sweeper task")?);
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!((count, all.len()), (300, 300), "every row once, none twice");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_scheduled_command_is_re_timed_or_cancelled_until_released(pool: PgPool) -> Checked {
    let row = submit_one(&pool, due_in(3600)).await?;

    let sooner = Utc::now() + Span::seconds(60);
    let moved = reschedule(&pool, TENANT, row.id, sooner)
        .await?
        .expect("scheduled: re-timed");
    assert_eq!(status(&moved), Status::Scheduled);
    assert_eq!(
        moved.run_at.map(|at| at.timestamp_micros()),
        Some(sooner.timestamp_micros())
    );
    assert!(moved.version > row.version);
    assert!(
        reschedule(&pool, "other", row.id, sooner).await?.is_none(),
        "another tenant's is not found"
    );
    // Re-timed into the past: due at the next pass.
    reschedule(&pool, TENANT, row.id, Utc::now() - Span::seconds(1))
        .await?
        .expect("re-timed");
    assert_eq!(release_due(&pool, PUBLISH_LEASE, 10).await?.len(), 1);
    assert!(
        reschedule(&pool, TENANT, row.id, sooner).await?.is_none(),
        "released: too late to re-time"
    );
    assert!(
        reschedule(
            &pool,
            TENANT,
            submit_one(&pool, command()).await?.id,
            sooner
        )
        .await?
        .is_none(),
        "a command never delayed is not re-timed"
    );

    let other = submit_one(&pool, due_in(3600)).await?;
    let cancelled = cancel(&pool, TENANT, other.id).await?.expect("cancellable");
    assert_eq!(status(&cancelled), Status::Cancelled);
    assert!(cancelled.finished_at.is_some());
    make_due(&pool, other.id).await;
    assert!(
        release_due(&pool, PUBLISH_LEASE, 10).await?.is_empty(),
        "a cancelled one is never released"
    );
    assert!(reschedule(&pool, TENANT, other.id, sooner).await?.is_none());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_scheduled_keyed_command_does_not_hold_its_key_until_due(pool: PgPool) -> Checked {
    // Scheduled first, so it is the earlier of the key by creation.
    let waiting = submit_one(
        &pool,
        NewCommand {
            run_at: Some(Utc::now() + Span::seconds(3600)),
            ..keyed("k")
        },
    )
    .await?;
    let now = queued(&pool, keyed("k")).await?;

    let ran = claim_one(&pool, &now)
        .await?
        .expect("not held for the waiting one");
    assert_eq!(ran.id, now.id);
    finish(&pool, &ran, Outcome::Success(serde_json::json!(1))).await?;

    // Once due it takes its turn like any command of the key.
    make_due(&pool, waiting.id).await;
    let released = release_due(&pool, PUBLISH_LEASE, 10).await?;
    assert_eq!(released.len(), 1);
    let ran = claim_one(&pool, &released[0])
        .await?
        .expect("its key is free");
    assert_eq!(ran.id, waiting.id);
    Ok(())
}
