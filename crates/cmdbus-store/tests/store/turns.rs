//! Keyed commands wait for their turn in PostgreSQL: a command that is not its key's turn is
//! held (its message consumed, or never published), owes no redelivery while it waits, and is
//! handed on — exactly one per key — by the finish that makes it the key's turn, or by the
//! sweep when the turn came another way. A hold and a hand-on of one key exclude each other
//! (the key's advisory lock), so no wake-up falls between them.

use cmdbus_domain::Status;
use cmdbus_store::{
    NewCommand, Outcome, cancel, hand_on, hold, hold_new, take_redeliveries, take_turns,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use crate::common::*;

const PUBLISH_LEASE: Duration = Duration::from_secs(10);
const KEY: &str = "account-7";

/// Whether `id` is held for its key, and whether it owes a redelivery.
async fn held(pool: &PgPool, id: Uuid) -> Result<(bool, bool), cmdbus_store::StoreError> {
    Ok(sqlx::query_as(
        "select held_since is not null, redeliver_at is not null from commands where id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

fn ids(rows: &[cmdbus_store::CommandRow]) -> Vec<Uuid> {
    rows.iter().map(|row| row.id).collect()
}

/// Takes `KEY`'s advisory lock in a transaction of its own, as a hold or hand-on under way does.
async fn lock_key(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0))")
        .bind(TENANT)
        .bind(KEY)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_delivery_whose_key_is_busy_is_held_and_owes_no_redelivery(pool: PgPool) -> Checked {
    let earlier = queued(&pool, keyed(KEY)).await?;
    let later = queued(&pool, keyed(KEY)).await?;
    let _running = claim_one(&pool, &earlier).await?.expect("first of its key");

    assert_eq!(hold(&pool, &[delivery(&later)]).await?, vec![later.id]);
    assert_eq!(held(&pool, later.id).await?, (true, false));
    assert_eq!(status(&reload(&pool, later.id).await?), Status::Queue);
    // Even long past its due time, redelivery never publishes a held command.
    sqlx::query("update commands set queued_at = now() - interval '1 hour' where id = $1")
        .bind(later.id)
        .execute(&pool)
        .await?;
    assert!(
        take_redeliveries(&pool, PUBLISH_LEASE, 100)
            .await?
            .is_empty()
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_command_that_is_its_keys_turn_is_not_held(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let other_key = queued(&pool, keyed("account-8")).await?;
    let unkeyed = queued(&pool, command()).await?;

    let claims = [delivery(&first), delivery(&other_key), delivery(&unkeyed)];
    assert!(hold(&pool, &claims).await?.is_empty());
    assert_eq!(held(&pool, first.id).await?, (false, true));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_finish_of_a_predecessor_hands_on_only_the_next_held_command(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let second = queued(&pool, keyed(KEY)).await?;
    let third = queued(&pool, keyed(KEY)).await?;
    let running = claim_one(&pool, &first).await?.expect("first of its key");
    let held_ids = hold(&pool, &[delivery(&second), delivery(&third)]).await?;
    assert_eq!(held_ids.len(), 2);
    let keys = [(TENANT, KEY)];

    assert!(
        hand_on(&pool, &keys, PUBLISH_LEASE).await?.is_empty(),
        "nothing is handed on while the first runs"
    );
    finish(&pool, &running, Outcome::Success(json!(null))).await?;
    let next = hand_on(&pool, &keys, PUBLISH_LEASE).await?;
    assert_eq!(ids(&next), vec![second.id]);
    assert_eq!(
        held(&pool, second.id).await?,
        (false, true),
        "its publish is owed"
    );
    assert_eq!(
        held(&pool, third.id).await?,
        (true, false),
        "the third still waits"
    );
    assert!(
        hand_on(&pool, &keys, PUBLISH_LEASE).await?.is_empty(),
        "handed on once"
    );

    let running = claim_one(&pool, &second)
        .await?
        .expect("handed on, then claimed");
    finish(&pool, &running, Outcome::Fail(error("boom"))).await?;
    let next = hand_on(&pool, &keys, PUBLISH_LEASE).await?;
    assert_eq!(
        ids(&next),
        vec![third.id],
        "a failure ends a turn as a success does"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_retrying_predecessor_keeps_its_successor_held(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let second = queued(&pool, keyed(KEY)).await?;
    let running = claim_one(&pool, &first).await?.expect("first of its key");
    hold(&pool, &[delivery(&second)]).await?;

    finish(
        &pool,
        &running,
        Outcome::Retry(error("busy"), Duration::from_secs(1)),
    )
    .await?;
    assert!(
        hand_on(&pool, &[(TENANT, KEY)], PUBLISH_LEASE)
            .await?
            .is_empty()
    );
    assert!(take_turns(&pool, PUBLISH_LEASE, 100).await?.is_empty());
    assert_eq!(held(&pool, second.id).await?, (true, false));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_fresh_command_behind_an_unfinished_one_is_queued_held_unpublished(
    pool: PgPool,
) -> Checked {
    let submitted = submit(&pool, &[keyed(KEY), keyed(KEY), command()]).await?;
    let rows: Vec<_> = submitted.into_iter().map(|s| s.row).collect();
    let all: Vec<Uuid> = ids(&rows);

    let held_rows = hold_new(&pool, &all).await?;
    assert_eq!(ids(&held_rows), vec![rows[1].id]);
    assert_eq!(status(&held_rows[0]), Status::Queue);
    assert!(
        held_rows[0].version > rows[1].version,
        "clients see it queued"
    );
    assert_eq!(status(&reload(&pool, rows[0].id).await?), Status::New);
    assert_eq!(status(&reload(&pool, rows[2].id).await?), Status::New);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_sweep_hands_on_a_command_whose_predecessor_was_cancelled(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let second = queued(&pool, keyed(KEY)).await?;
    let other = queued(&pool, keyed("account-8")).await?;
    let _other_runs = claim_one(&pool, &other).await?.expect("runs");
    let other_next = queued(&pool, keyed("account-8")).await?;
    hold(&pool, &[delivery(&other_next)]).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("update commands set held_since = now(), redeliver_at = null where id = $1")
        .bind(second.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    assert!(take_turns(&pool, PUBLISH_LEASE, 100).await?.is_empty());
    assert!(cancel(&pool, TENANT, first.id).await?.is_some());
    let taken = take_turns(&pool, PUBLISH_LEASE, 100).await?;
    assert_eq!(ids(&taken), vec![second.id], "only the key whose turn came");
    assert!(take_turns(&pool, PUBLISH_LEASE, 100).await?.is_empty());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_hand_on_waits_for_a_hold_of_its_key_under_way(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let second = queued(&pool, keyed(KEY)).await?;
    let running = claim_one(&pool, &first).await?.expect("first of its key");
    finish(&pool, &running, Outcome::Success(json!(null))).await?;
    // A hold of `second` has taken the key (it read the key before the finish committed).
    let mut holding = lock_key(&pool).await?;

    let handing_on = tokio::spawn({
        let pool = pool.clone();
        async move { hand_on(&pool, &[(TENANT, KEY)], PUBLISH_LEASE).await }
    });
    until_blocked(&pool, 1).await?;
    sqlx::query("update commands set held_since = now(), redeliver_at = null where id = $1")
        .bind(second.id)
        .execute(&mut *holding)
        .await?;
    holding.commit().await?;

    let next = handing_on.await.expect("hand-on task")?;
    assert_eq!(ids(&next), vec![second.id], "the hold under way was missed");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_hold_waits_for_a_hand_on_of_its_key_and_then_sees_the_finish(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed(KEY)).await?;
    let second = queued(&pool, keyed(KEY)).await?;
    let running = claim_one(&pool, &first).await?.expect("first of its key");
    // A hand-on has taken the key; the finish it follows commits while the hold waits.
    let handing_on = lock_key(&pool).await?;

    let holding = tokio::spawn({
        let pool = pool.clone();
        let claim = delivery(&second);
        async move { hold(&pool, &[claim]).await }
    });
    until_blocked(&pool, 1).await?;
    finish(&pool, &running, Outcome::Success(json!(null))).await?;
    handing_on.commit().await?;

    assert!(
        holding.await.expect("hold task")?.is_empty(),
        "held behind a finish that came first: nobody would hand it on"
    );
    assert_eq!(held(&pool, second.id).await?, (false, true));
    Ok(())
}

/// Holding takes the rows' locks in id order whatever the plan, as a claim does: with `a`
/// locked, holding `[a, b]` — `b` written first, both behind a running command of their key —
/// holds nothing while it waits.
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn holding_locks_its_rows_in_id_order_whatever_the_plan(pool: PgPool) -> Checked {
    let first = queued(&pool, keyed("k")).await?;
    claim_one(&pool, &first)
        .await?
        .expect("the key's first runs");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let b = queued(
        &pool,
        NewCommand {
            id: b,
            ..keyed("k")
        },
    )
    .await?;
    let a = queued(
        &pool,
        NewCommand {
            id: a,
            ..keyed("k")
        },
    )
    .await?;
    let planned = hash_joining(&pool).await?;
    let claims = [delivery(&a), delivery(&b)];
    let (b_free, held) =
        other_free_while_waiting(
            &pool,
            a.id,
            b.id,
            async move { hold(&planned, &claims).await },
        )
        .await?;
    assert!(
        b_free.is_ok(),
        "holding held b while it waited for a: {b_free:?}"
    );
    assert_eq!(held.len(), 2, "both wait for their key");
    Ok(())
}
