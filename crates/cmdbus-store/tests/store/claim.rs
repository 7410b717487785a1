//! `claim`: a delivery becomes a run (`running`, a fresh token, a lease, an attempt and its
//! history row) only when the command is waiting, of the delivery's generation, not cancelled and
//! within its attempt budget; every other delivery claims nothing.

use cmdbus_domain::Status;
use cmdbus_store::{Claim, Claimed, CommandRow, NewCommand, Outcome, Refusal, replay};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_queued_command_is_claimed_with_a_token_a_lease_and_a_history_row(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let before = db_now(&pool).await?;

    let run = claim_one(&pool, &waiting)
        .await?
        .expect("a queued command is claimed");

    assert_eq!(status(&run), Status::Running);
    assert_eq!(run.attempt, 1);
    assert_eq!(run.worker.as_deref(), Some("worker-1"));
    assert!(run.claim.is_some());
    let lease_until = run.lease_until.expect("a run has a lease");
    assert!(
        lease_until >= before + chrono::Duration::seconds(299),
        "lease of {LEASE:?} from now"
    );
    assert_eq!(
        run.started_at.map(|at| at + chrono::Duration::seconds(300)),
        Some(lease_until),
        "the lease runs from the start of the run"
    );
    assert_eq!(
        run.redeliver_at, None,
        "a claimed command owes no redelivery"
    );
    assert!(run.version > waiting.version, "a claim is a visible change");
    assert_eq!(
        attempts(&pool, run.id).await?,
        vec![(0, 1, "worker-1".to_owned(), None, None)]
    );
    assert_eq!(
        every_column(&reload(&pool, run.id).await?),
        every_column(&run)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_worker_faster_than_the_broker_confirm_claims_a_new_command(pool: PgPool) -> Checked {
    let recorded = submit_one(&pool, command()).await?;
    assert_eq!(status(&recorded), Status::New);

    let run = claim_one(&pool, &recorded)
        .await?
        .expect("a new command is claimed");

    assert_eq!(status(&run), Status::Running);
    assert!(
        run.queued_at.is_some(),
        "a claimed command counts as queued"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_duplicate_delivery_of_a_running_command_claims_nothing(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let run = claim_one(&pool, &waiting)
        .await?
        .expect("first delivery claims");

    let duplicate = claim_answers(&pool, &[delivery(&waiting)], "worker-2", None).await?;

    assert_eq!(
        format!("{duplicate:?}"),
        format!("{:?}", [(waiting.id, Claimed::Refused(Refusal::Duplicate))])
    );
    assert_eq!(
        every_column(&reload(&pool, run.id).await?),
        every_column(&run)
    );
    assert_eq!(attempts(&pool, run.id).await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn two_deliveries_of_one_command_in_one_batch_claim_it_once(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;

    let claimed = claim(&pool, &[delivery(&waiting), delivery(&waiting)], "worker-1").await?;

    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(attempts(&pool, waiting.id).await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_stale_delivery_of_an_older_generation_claims_nothing(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let run = claim_one(&pool, &waiting).await?.expect("claimed");
    finish(&pool, &run, Outcome::Fail(error("boom"))).await?;
    let replayed = replay(&pool, TENANT, run.id)
        .await?
        .expect("a failure is replayed");
    assert_eq!(replayed.generation, 1);

    let stale = refusal(&pool, delivery(&waiting)).await?;
    assert_eq!(stale, Refusal::Duplicate, "the generation-0 message");
    assert_eq!(
        every_column(&reload(&pool, run.id).await?),
        every_column(&replayed)
    );

    let fresh = claim_one(&pool, &replayed)
        .await?
        .expect("the new generation is claimed");
    assert_eq!((fresh.generation, fresh.attempt), (1, 1));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_delivery_of_a_future_generation_claims_nothing(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let ahead = Claim {
        id: waiting.id,
        generation: waiting.generation + 1,
    };

    assert_eq!(refusal(&pool, ahead).await?, Refusal::Duplicate);
    assert_eq!(
        every_column(&reload(&pool, waiting.id).await?),
        every_column(&waiting)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_delivery_of_an_unknown_command_claims_nothing(pool: PgPool) -> Checked {
    let unknown = Claim {
        id: Uuid::now_v7(),
        generation: 0,
    };
    assert_eq!(refusal(&pool, unknown).await?, Refusal::Unknown);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_cancelled_command_is_never_claimed(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let cancelled = cmdbus_store::cancel(&pool, TENANT, waiting.id)
        .await?
        .expect("a queued command is cancelled");

    assert_eq!(
        refusal(&pool, delivery(&waiting)).await?,
        Refusal::Duplicate
    );
    assert_eq!(
        every_column(&reload(&pool, waiting.id).await?),
        every_column(&cancelled)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finished_command_is_never_claimed_again(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let run = claim_one(&pool, &waiting).await?.expect("claimed");
    let done = finish(
        &pool,
        &run,
        Outcome::Success(serde_json::json!({"sent": true})),
    )
    .await?;

    assert_eq!(
        refusal(&pool, delivery(&waiting)).await?,
        Refusal::Duplicate
    );
    assert_eq!(
        every_column(&reload(&pool, run.id).await?),
        every_column(&done[0])
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_claims_the_claimable_commands_and_leaves_the_rest(pool: PgPool) -> Checked {
    let first = queued(&pool, command()).await?;
    let second = queued(&pool, command()).await?;
    let running = queued(&pool, command()).await?;
    claim_one(&pool, &running).await?.expect("claimed");
    let cancelled = queued(&pool, command()).await?;
    cmdbus_store::cancel(&pool, TENANT, cancelled.id).await?;

    let claimed = claim(
        &pool,
        &[
            delivery(&second),
            delivery(&running),
            delivery(&cancelled),
            delivery(&first),
        ],
        "worker-2",
    )
    .await?;

    let mut ids: Vec<Uuid> = claimed.iter().map(|row| row.id).collect();
    ids.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        claimed
            .iter()
            .all(|row| row.worker.as_deref() == Some("worker-2"))
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn each_claim_draws_a_token_of_its_own(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let first = claim_one(&pool, &waiting).await?.expect("claimed");
    let retried = finish(
        &pool,
        &first,
        Outcome::Retry(error("flaky"), std::time::Duration::ZERO),
    )
    .await?;

    let second = claim_one(&pool, &retried[0])
        .await?
        .expect("the retry is claimed");

    assert_ne!(first.claim, second.claim);
    assert_eq!(second.attempt, 2);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failure_parked_in_a_lane_is_claimed_only_by_a_worker_of_that_lane(
    pool: PgPool,
) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let run = claim_one(&pool, &waiting).await?.expect("claimed");
    let parked = finish_with_token(
        &pool,
        run.id,
        run_token(&run),
        Outcome::Fail(error("boom")),
        Some("exceptions1"),
    )
    .await?;
    assert_eq!(lane(&parked[0]).as_deref(), Some("exceptions1"));

    assert_eq!(
        refusal(&pool, delivery(&parked[0])).await?,
        Refusal::Duplicate
    );
    assert_eq!(
        refusal_in(&pool, delivery(&parked[0]), Some("exceptions2")).await?,
        Refusal::Duplicate
    );
    let rerun = claim_in(
        &pool,
        &[delivery(&parked[0])],
        "operator",
        Some("exceptions1"),
    )
    .await?;

    assert_eq!(rerun.len(), 1);
    assert_eq!(status(&rerun[0]), Status::Running);
    assert_eq!(rerun[0].attempt, 2);
    assert_eq!(rerun[0].finished_at, None);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_worker_of_a_lane_still_claims_ordinary_queued_commands(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let claimed = claim_in(
        &pool,
        &[delivery(&waiting)],
        "operator",
        Some("exceptions1"),
    )
    .await?;
    assert_eq!(claimed.len(), 1);
    Ok(())
}

fn run_token(row: &cmdbus_store::CommandRow) -> Uuid {
    run(row).claim
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn two_workers_claiming_at_once_start_one_run(pool: PgPool) -> Checked {
    use sqlx::Acquire as _;
    let waiting = queued(&pool, command()).await?;
    // A transaction holds the row, so that both claims are under way before either can run.
    let mut conn = pool.acquire().await?;
    let mut holder = conn.begin().await?;
    sqlx::query("select 1 from commands where id = $1 for update")
        .bind(waiting.id)
        .execute(&mut *holder)
        .await?;
    let race = |worker: &'static str| {
        let pool = pool.clone();
        let delivery = delivery(&waiting);
        tokio::spawn(async move { claim_answers(&pool, &[delivery], worker, None).await })
    };
    let (first, second) = (race("worker-1"), race("worker-2"));
    until_blocked(&pool, 2).await?;
    holder.commit().await?;
    let mut answers = first.await.expect("the first claim ran")?;
    answers.extend(second.await.expect("the second claim ran")?);

    let winners: Vec<CommandRow> = runs(answers.clone());
    assert_eq!(winners.len(), 1, "runs started: {answers:?}");
    let losers: Vec<String> = answers
        .iter()
        .filter_map(|(_, answer)| match answer {
            Claimed::Refused(why) => Some(why.as_str().to_owned()),
            Claimed::Run(_) => None,
        })
        .collect();
    assert_eq!(
        losers,
        vec!["duplicate"],
        "the loser reads why after waiting for the winner"
    );
    let row = reload(&pool, waiting.id).await?;
    assert_eq!(
        (row.worker.clone(), row.attempt, row.claim),
        (winners[0].worker.clone(), 1, winners[0].claim)
    );
    assert_eq!(attempts(&pool, waiting.id).await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_answers_once_for_each_id_with_a_run_or_a_reason(pool: PgPool) -> Checked {
    let free = queued(&pool, command()).await?;
    let running = queued(&pool, command()).await?;
    claim_one(&pool, &running).await?.expect("claimed");
    let earlier = queued(&pool, keyed("account-7")).await?;
    claim_one(&pool, &earlier).await?.expect("claimed");
    let waiting = queued(&pool, keyed("account-7")).await?;
    let spent = queued(
        &pool,
        cmdbus_store::NewCommand {
            max_attempts: 1,
            ..command()
        },
    )
    .await?;
    let spent_run = claim_one(&pool, &spent).await?.expect("claimed");
    // A retry past the budget leaves a queued row nobody may start (the worker fails it instead).
    let spent = finish(
        &pool,
        &spent_run,
        Outcome::Retry(error("flaky"), std::time::Duration::ZERO),
    )
    .await?
    .remove(0);
    let unknown = Uuid::now_v7();

    let answers = claim_answers(
        &pool,
        &[
            delivery(&waiting),
            delivery(&free),
            Claim {
                id: unknown,
                generation: 0,
            },
            delivery(&running),
            delivery(&spent),
            delivery(&free),
        ],
        "worker-2",
        None,
    )
    .await?;

    let mut seen: Vec<(Uuid, String)> = answers
        .iter()
        .map(|(id, answer)| {
            let word = match answer {
                Claimed::Run(row) => format!("run by {}", row.worker.as_deref().unwrap_or("?")),
                Claimed::Refused(why) => why.as_str().to_owned(),
            };
            (*id, word)
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (free.id, "run by worker-2".to_owned()),
        (running.id, "duplicate".to_owned()),
        (waiting.id, "waiting_for_predecessor".to_owned()),
        (spent.id, "exhausted".to_owned()),
        (unknown, "unknown".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    Ok(())
}

/// A batched claim takes its rows' locks in id order whatever plan its update gets. With `a`
/// locked by another transaction, a claim of `[a, b]` — `b` written first, so a scan meets it
/// first — waits for `a` holding nothing: out of order, it would hold `b` while it waits, and an
/// api marking `[a, b]` queued in id order would deadlock with it (PostgreSQL breaks that after
/// `deadlock_timeout`, a second's stall, and fails one of the batches).
#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_claim_locks_its_rows_in_id_order_whatever_the_plan(pool: PgPool) -> Checked {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let b = queued(&pool, NewCommand { id: b, ..command() }).await?;
    let a = queued(&pool, NewCommand { id: a, ..command() }).await?;
    assert!(a.id < b.id);
    let planned = hash_joining(&pool).await?;
    let claims = [delivery(&a), delivery(&b)];
    let (b_free, claimed) = other_free_while_waiting(&pool, a.id, b.id, async move {
        claim(&planned, &claims, "worker-1").await
    })
    .await?;

    assert!(
        b_free.is_ok(),
        "the claim held b while it waited for a: {b_free:?}"
    );
    assert_eq!(claimed.len(), 2, "both are claimed once a is free");
    Ok(())
}
