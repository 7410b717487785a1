//! Order by key: a command with an ordering key is claimable only when no other command of the
//! same key and tenant runs and no earlier one is unfinished (`new`, `queue` or `running`), so a
//! key never has two runs, replays and lane re-runs included.

use cmdbus_domain::Status;
use cmdbus_store::{Claimed, NewCommand, Outcome, Refusal, cancel};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_later_command_of_a_key_waits_until_the_earlier_one_finished(pool: PgPool) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;

    assert_eq!(
        refusal(&pool, delivery(&later)).await?,
        Refusal::WaitingForPredecessor,
        "before its predecessor ran"
    );
    let running = claim_one(&pool, &earlier)
        .await?
        .expect("the earliest of a key is claimable");
    assert_eq!(
        refusal(&pool, delivery(&later)).await?,
        Refusal::WaitingForPredecessor,
        "while its predecessor runs"
    );
    assert_eq!(
        every_column(&reload(&pool, later.id).await?),
        every_column(&later)
    );

    finish(&pool, &running, Outcome::Success(json!(null))).await?;
    let next = claim_one(&pool, &later)
        .await?
        .expect("claimable once the predecessor finished");
    assert_eq!(status(&next), Status::Running);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn one_batch_never_starts_two_commands_of_a_key(pool: PgPool) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;

    let claimed = claim(&pool, &[delivery(&later), delivery(&earlier)], "worker-1").await?;

    assert_eq!(
        claimed.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![earlier.id]
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_command_recorded_in_the_same_batch_waits_for_the_one_before_it(pool: PgPool) -> Checked {
    // One insert gives both the same `created_at`: the id (UUID v7, in submit order) decides.
    let mut first = keyed("account-7");
    let mut second = keyed("account-7");
    if second.id < first.id {
        std::mem::swap(&mut first.id, &mut second.id);
    }
    let rows = submit(&pool, &[first.clone(), second.clone()]).await?;
    assert_eq!(rows[0].row.created_at, rows[1].row.created_at);

    assert_eq!(
        refusal(&pool, delivery(&rows[1].row)).await?,
        Refusal::WaitingForPredecessor
    );
    assert!(claim_one(&pool, &rows[0].row).await?.is_some());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn other_keys_other_tenants_and_unkeyed_commands_do_not_wait(pool: PgPool) -> Checked {
    let blocker = queued(&pool, keyed("account-7")).await?;
    claim_one(&pool, &blocker).await?.expect("claimed");
    let other_key = queued(&pool, keyed("account-8")).await?;
    let other_tenant = queued(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ..keyed("account-7")
        },
    )
    .await?;
    let unkeyed = queued(&pool, command()).await?;

    let claimed = claim(
        &pool,
        &[
            delivery(&other_key),
            delivery(&other_tenant),
            delivery(&unkeyed),
        ],
        "worker-1",
    )
    .await?;

    assert_eq!(claimed.len(), 3);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_predecessor_waiting_for_its_retry_still_holds_the_key(pool: PgPool) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    let run = claim_one(&pool, &earlier).await?.expect("claimed");
    let retrying = finish(&pool, &run, Outcome::Retry(error("flaky"), Duration::ZERO)).await?;
    assert_eq!(status(&retrying[0]), Status::Queue);

    assert_eq!(
        refusal(&pool, delivery(&later)).await?,
        Refusal::WaitingForPredecessor
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failed_or_cancelled_predecessor_releases_the_key(pool: PgPool) -> Checked {
    let failing = queued(&pool, keyed("account-7")).await?;
    let cancelled = queued(&pool, keyed("account-7")).await?;
    let last = queued(&pool, keyed("account-7")).await?;

    let run = claim_one(&pool, &failing).await?.expect("claimed");
    finish(&pool, &run, Outcome::Fail(error("boom"))).await?;
    assert_eq!(
        refusal(&pool, delivery(&last)).await?,
        Refusal::WaitingForPredecessor,
        "the cancelled one is still waiting"
    );
    cancel(&pool, TENANT, cancelled.id)
        .await?
        .expect("cancelled");

    assert!(claim_one(&pool, &last).await?.is_some());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_later_command_that_finished_does_not_hold_back_an_earlier_one(pool: PgPool) -> Checked {
    // Order is decided among the unfinished: a later command cancelled before it ran leaves the
    // earlier one claimable, and the earlier one is what held the later back.
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    cancel(&pool, TENANT, later.id).await?.expect("cancelled");

    assert!(claim_one(&pool, &earlier).await?.is_some());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_replayed_predecessor_waits_while_a_later_command_of_its_key_runs(
    pool: PgPool,
) -> Checked {
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    let run = claim_one(&pool, &earlier).await?.expect("claimed");
    finish(&pool, &run, Outcome::Fail(error("boom"))).await?;
    let running = claim_one(&pool, &later)
        .await?
        .expect("the key was handed on");
    let replayed = cmdbus_store::replay(&pool, TENANT, earlier.id)
        .await?
        .expect("replayed");

    let second = claim_one(&pool, &replayed).await?;

    let running_now: i64 = sqlx::query_scalar(
        "select count(*) from commands where ordering_key = 'account-7' and status = 'running'",
    )
    .fetch_one(&pool)
    .await?;
    assert!(
        second.is_none(),
        "claimed while {} of its key runs",
        running.id
    );
    assert_eq!(running_now, 1);
    assert_eq!(
        refusal(&pool, delivery(&replayed)).await?,
        Refusal::WaitingForPredecessor,
        "the replayed command keeps its message while it waits"
    );

    // The running one finishes: the replayed earlier command has its turn, and a command
    // submitted after both waits for it, as the later ones waited for it the first time.
    let last = queued(&pool, keyed("account-7")).await?;
    finish(&pool, &running, Outcome::Success(json!(null))).await?;
    assert_eq!(
        refusal(&pool, delivery(&last)).await?,
        Refusal::WaitingForPredecessor
    );
    let rerun = claim_one(&pool, &replayed)
        .await?
        .expect("claimable once the later one finished");
    assert_eq!(status(&rerun), Status::Running);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_lane_rerun_waits_while_a_later_command_of_its_key_runs(pool: PgPool) -> Checked {
    let parked = parked(&pool, keyed("account-7"), "exceptions1").await?;
    let later = queued(&pool, keyed("account-7")).await?;
    claim_one(&pool, &later)
        .await?
        .expect("the key was handed on");

    let rerun = claim_in(&pool, &[delivery(&parked)], "operator", Some("exceptions1")).await?;

    assert!(
        rerun.is_empty(),
        "a lane re-run started beside a running command of its key"
    );
    assert_eq!(
        refusal_in(&pool, delivery(&parked), Some("exceptions1")).await?,
        Refusal::WaitingForPredecessor,
        "the lane keeps its message while the key is busy"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_key_is_handed_on_only_when_the_predecessors_finish_commits(pool: PgPool) -> Checked {
    use sqlx::Acquire as _;
    let earlier = queued(&pool, keyed("account-7")).await?;
    let later = queued(&pool, keyed("account-7")).await?;
    let running = claim_one(&pool, &earlier).await?.expect("claimed");
    let mut conn = pool.acquire().await?;
    let mut finishing = conn.begin().await?;
    let finished = cmdbus_store::finish(
        &mut *finishing,
        &[cmdbus_store::Finish {
            id: running.id,
            claim: run(&running).claim,
            outcome: Outcome::Success(json!(null)),
            lane: None,
        }],
        REDELIVER_AFTER,
    )
    .await?;
    assert_eq!(finished.len(), 1);

    // Another worker, at the same time: the finish is not committed, so the key is not free.
    let refused = refusal(&pool, delivery(&later)).await?;
    finishing.commit().await?;
    let next = claim_one(&pool, &later).await?;

    assert_eq!(refused, Refusal::WaitingForPredecessor);
    assert!(next.is_some(), "the committed finish handed the key on");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_lane_rerun_and_a_later_command_claimed_at_once_start_one_run(pool: PgPool) -> Checked {
    use sqlx::Acquire as _;
    let parked = parked(&pool, keyed("account-7"), "exceptions1").await?;
    let later = queued(&pool, keyed("account-7")).await?;
    // A transaction holds both rows, so that each claim has read its key (nothing runs) before
    // either can start its run: the predicate alone sees no conflict in either snapshot.
    let mut conn = pool.acquire().await?;
    let mut holder = conn.begin().await?;
    sqlx::query("select 1 from commands where id = any($1) for update")
        .bind(vec![parked.id, later.id])
        .execute(&mut *holder)
        .await?;
    let race =
        |row: &cmdbus_store::CommandRow, worker: &'static str, lane: Option<&'static str>| {
            let pool = pool.clone();
            let delivery = delivery(row);
            tokio::spawn(async move { claim_answers(&pool, &[delivery], worker, lane).await })
        };
    let (rerun, next) = (
        race(&parked, "operator", Some("exceptions1")),
        race(&later, "worker-1", None),
    );
    until_blocked(&pool, 2).await?;
    holder.commit().await?;
    let mut answers = rerun.await.expect("the lane's claim ran")?;
    answers.extend(next.await.expect("the main claim ran")?);

    let running_now: i64 = sqlx::query_scalar(
        "select count(*) from commands where ordering_key = 'account-7' and status = 'running'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(running_now, 1, "two runs of one key: {answers:?}");
    let refused: Vec<Refusal> = answers
        .iter()
        .filter_map(|(_, answer)| match answer {
            Claimed::Refused(why) => Some(*why),
            Claimed::Run(_) => None,
        })
        .collect();
    assert_eq!(refused, vec![Refusal::WaitingForPredecessor]);
    Ok(())
}
