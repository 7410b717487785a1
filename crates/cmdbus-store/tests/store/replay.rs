//! `replay` and `replay_matching`: a failed or cancelled command starts over as a new generation
//! (`new`, a fresh attempt budget, everything of its last run cleared); older messages are fenced
//! out by the generation.

use cmdbus_domain::Status;
use cmdbus_store::{NewCommand, Outcome, replay, replay_matching};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failed_command_replays_as_a_new_generation_with_a_fresh_budget(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let failed = finish_with_token(
        &pool,
        held.id,
        run(&held).claim,
        Outcome::Fail(error("boom")),
        Some("exceptions1"),
    )
    .await?
    .remove(0);

    let replayed = replay(&pool, TENANT, failed.id)
        .await?
        .expect("a failure is replayed");

    assert_eq!(status(&replayed), Status::New);
    assert_eq!((replayed.generation, replayed.attempt), (1, 0));
    assert_eq!(
        (
            replayed.lease_losses,
            replayed.releases,
            replayed.cancel_requested
        ),
        (0, 0, false)
    );
    assert!(replayed.error.is_none() && replayed.result.is_none() && replayed.progress.is_none());
    assert_eq!(
        (lane(&replayed), replayed.worker.as_deref(), replayed.claim),
        (None, None, None)
    );
    assert_eq!(
        (
            replayed.started_at,
            replayed.finished_at,
            replayed.redeliver_at
        ),
        (None, None, None)
    );
    assert!(replayed.version > failed.version);
    assert_eq!(
        attempts(&pool, held.id).await?.len(),
        1,
        "the history of generation 0 stays"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_cancelled_command_replays_and_a_live_or_successful_one_does_not(
    pool: PgPool,
) -> Checked {
    let cancelled = queued(&pool, command()).await?;
    cmdbus_store::cancel(&pool, TENANT, cancelled.id)
        .await?
        .expect("cancelled");
    let waiting = queued(&pool, command()).await?;
    let running = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let succeeded = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let succeeded = finish(&pool, &succeeded, Outcome::Success(json!(1)))
        .await?
        .remove(0);

    assert_eq!(
        replay(&pool, TENANT, cancelled.id)
            .await?
            .map(|row| row.generation),
        Some(1)
    );
    for row in [&waiting, &running, &succeeded] {
        assert!(
            replay(&pool, TENANT, row.id).await?.is_none(),
            "{:?} replayed",
            row.status
        );
        assert_eq!(
            every_column(&reload(&pool, row.id).await?),
            every_column(row)
        );
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn another_tenant_cannot_replay_a_command(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let failed = finish(&pool, &held, Outcome::Fail(error("boom")))
        .await?
        .remove(0);

    assert!(replay(&pool, "globex", failed.id).await?.is_none());
    assert_eq!(
        every_column(&reload(&pool, failed.id).await?),
        every_column(&failed)
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn replay_matching_counts_then_replays_only_the_matching_failures(pool: PgPool) -> Checked {
    let mut failed = Vec::new();
    for (kind, code) in [
        ("invoice.send", "timeout"),
        ("invoice.send", "declined"),
        ("mail.send", "timeout"),
    ] {
        let row = queued(
            &pool,
            NewCommand {
                kind: kind.to_owned(),
                ..command()
            },
        )
        .await?;
        let held = claim_one(&pool, &row).await?.expect("claimed");
        failed.push(
            finish(&pool, &held, Outcome::Fail(error(code)))
                .await?
                .remove(0),
        );
    }
    let elsewhere = queued(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ..command()
        },
    )
    .await?;
    let held = claim_one(&pool, &elsewhere).await?.expect("claimed");
    finish(&pool, &held, Outcome::Fail(error("timeout"))).await?;

    let (count, rows) = replay_matching(
        &pool,
        TENANT,
        Some("invoice.send"),
        Some("timeout"),
        (None, None),
        true,
    )
    .await?;
    assert_eq!((count, rows.len()), (1, 0), "a dry run replays nothing");
    assert_eq!(status(&reload(&pool, failed[0].id).await?), Status::Fail);

    let (count, rows) =
        replay_matching(&pool, TENANT, None, Some("timeout"), (None, None), false).await?;
    assert_eq!(count, 2);
    let mut replayed: Vec<_> = rows.iter().map(|row| row.id).collect();
    replayed.sort();
    let mut expected = vec![failed[0].id, failed[2].id];
    expected.sort();
    assert_eq!(replayed, expected);
    assert!(
        rows.iter()
            .all(|row| status(row) == Status::New && row.generation == 1)
    );
    assert_eq!(status(&reload(&pool, failed[1].id).await?), Status::Fail);
    assert_eq!(
        status(&reload(&pool, held.id).await?),
        Status::Fail,
        "another tenant's stays"
    );

    let finished = failed[1].finished_at.expect("finished");
    let (before, _) =
        replay_matching(&pool, TENANT, None, None, (None, Some(finished)), true).await?;
    let (from, _) =
        replay_matching(&pool, TENANT, None, None, (Some(finished), None), true).await?;
    assert_eq!((before, from), (0, 1), "the window is [from, to)");
    Ok(())
}
