//! `replay` and the bulk replay (`count_failed`, `failed_ids_after`, `replay_failed`): a failed
//! or cancelled command starts over as a new generation (`new`, a fresh attempt budget,
//! everything of its last run cleared); older messages are fenced out by the generation. A bulk
//! replay walks its matches a page of ids at a time.

use cmdbus_domain::Status;
use cmdbus_store::{
    CommandRow, FailedFilter, NewCommand, Outcome, StoreError, count_failed, failed_ids_after,
    replay, replay_failed,
};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_failed_command_replays_as_a_new_generation_with_a_fresh_budget(pool: PgPool) -> Checked {
    let failed = parked(&pool, command(), "exceptions1").await?;

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
        attempts(&pool, failed.id).await?.len(),
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

/// A filter of the test tenant's failures, with nothing else set.
fn failures() -> FailedFilter<'static> {
    FailedFilter {
        tenant: TENANT,
        kind: None,
        error_code: None,
        since: None,
        until: None,
    }
}

/// A command of `kind` that ran once and failed with `code`.
async fn failed_with(pool: &PgPool, kind: &str, code: &str) -> Result<CommandRow, StoreError> {
    let row = queued(
        pool,
        NewCommand {
            kind: kind.to_owned(),
            ..command()
        },
    )
    .await?;
    let held = claim_one(pool, &row).await?.expect("claimed");
    Ok(finish(pool, &held, Outcome::Fail(error(code)))
        .await?
        .remove(0))
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_bulk_replay_counts_then_replays_only_the_matching_failures(pool: PgPool) -> Checked {
    let mut failed = Vec::new();
    for (kind, code) in [
        ("invoice.send", "timeout"),
        ("invoice.send", "declined"),
        ("mail.send", "timeout"),
    ] {
        failed.push(failed_with(&pool, kind, code).await?);
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

    let invoice_timeouts = FailedFilter {
        kind: Some("invoice.send"),
        error_code: Some("timeout"),
        ..failures()
    };
    assert_eq!(count_failed(&pool, &invoice_timeouts).await?, 1);
    assert_eq!(status(&reload(&pool, failed[0].id).await?), Status::Fail);

    let timeouts = FailedFilter {
        error_code: Some("timeout"),
        ..failures()
    };
    assert_eq!(count_failed(&pool, &timeouts).await?, 2);
    let ids = failed_ids_after(&pool, &timeouts, None, 10).await?;
    let mut expected = vec![failed[0].id, failed[2].id];
    expected.sort();
    assert_eq!(ids, expected, "in id order");
    // A command that is not among the given ids, or no longer matches, is left alone.
    let rows = replay_failed(&pool, &timeouts, &[failed[0].id, failed[1].id, held.id]).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, failed[0].id);
    assert!(status(&rows[0]) == Status::New && rows[0].generation == 1);
    assert!(
        replay_failed(&pool, &timeouts, &[failed[0].id])
            .await?
            .is_empty(),
        "replayed already: it no longer matches"
    );
    assert_eq!(status(&reload(&pool, failed[1].id).await?), Status::Fail);
    assert_eq!(status(&reload(&pool, failed[2].id).await?), Status::Fail);
    assert_eq!(
        status(&reload(&pool, held.id).await?),
        Status::Fail,
        "another tenant's stays"
    );

    let finished = failed[1].finished_at.expect("finished");
    let before = FailedFilter {
        until: Some(finished),
        ..failures()
    };
    let from = FailedFilter {
        since: Some(finished),
        ..failures()
    };
    assert_eq!(
        (
            count_failed(&pool, &before).await?,
            count_failed(&pool, &from).await?
        ),
        (0, 2),
        "the window is [from, to)"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_bulk_replay_walks_its_matches_a_bounded_page_of_ids_at_a_time(pool: PgPool) -> Checked {
    let mut failed = Vec::new();
    for _ in 0..5 {
        failed.push(failed_with(&pool, "invoice.send", "timeout").await?.id);
    }
    failed.sort();
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = failed_ids_after(&pool, &failures(), after, 2).await?;
        let Some(&last) = page.last() else { break };
        after = Some(last);
        assert_eq!(
            replay_failed(&pool, &failures(), &page).await?.len(),
            page.len()
        );
        pages.push(page);
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1],
        "never more than a page"
    );
    assert_eq!(pages.concat(), failed, "each once, in id order");
    assert_eq!(count_failed(&pool, &failures()).await?, 0);
    Ok(())
}
