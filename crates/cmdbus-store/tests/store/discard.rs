//! Discard (`discard`, `count_discardable`, `discard_page`): a parked failure becomes
//! `discarded` for good — its lane's message claims nothing, no sweep publishes it again, no
//! replay takes it — and nothing else can be discarded; the bulk form takes exactly what its
//! count matched.

use cmdbus_domain::Status;
use cmdbus_store::{
    DiscardFilter, Outcome, Refusal, count_discardable, discard, discard_page, replay,
    take_redeliveries,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

use crate::common::*;

fn parked_failures() -> DiscardFilter<'static> {
    DiscardFilter {
        tenant: TENANT,
        ids: None,
        kind: None,
        error_code: None,
        lane: None,
        since: None,
        until: None,
    }
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_discarded_failure_never_runs_again(pool: PgPool) -> Checked {
    let failed = parked(&pool, command(), "exceptions1").await?;
    assert!(failed.redeliver_at.is_some(), "its parking publish is owed");

    let discarded = discard(&pool, TENANT, failed.id).await?.expect("discarded");
    assert_eq!(status(&discarded), Status::Discarded);
    assert!(discarded.version > failed.version, "a visible change");
    assert_eq!(
        discarded.finished_at, failed.finished_at,
        "still the failure's end"
    );
    assert!(discarded.redeliver_at.is_none(), "nothing owed");

    // Its parked message, consumed later by the lane, claims nothing and changes nothing.
    let before = every_column(&reload(&pool, failed.id).await?);
    assert_eq!(
        refusal_in(&pool, delivery(&failed), Some("exceptions1")).await?,
        Refusal::Duplicate
    );
    // No sweep publishes it, however long after, and no replay takes it.
    sqlx::query("update commands set redeliver_at = now() - interval '1 hour' where id = $1")
        .bind(failed.id)
        .execute(&pool)
        .await?;
    let swept = take_redeliveries(&pool, Duration::from_secs(10), 100).await?;
    assert!(swept.iter().all(|row| row.id != failed.id), "{swept:?}");
    assert!(replay(&pool, TENANT, failed.id).await?.is_none());
    sqlx::query("update commands set redeliver_at = null where id = $1")
        .bind(failed.id)
        .execute(&pool)
        .await?;
    assert_eq!(every_column(&reload(&pool, failed.id).await?), before);
    assert!(discard(&pool, TENANT, failed.id).await?.is_none(), "once");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn only_a_parked_failure_is_discarded(pool: PgPool) -> Checked {
    let waiting = queued(&pool, command()).await?;
    let done = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(&pool, &done, Outcome::Success(json!(1))).await?;
    let unparked = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(&pool, &unparked, Outcome::Fail(error("boom"))).await?;
    let parked = parked(&pool, command(), "exceptions2").await?;
    for row in [&waiting, &done, &unparked] {
        let before = every_column(&reload(&pool, row.id).await?);
        assert!(
            discard(&pool, TENANT, row.id).await?.is_none(),
            "{:?}",
            row.status
        );
        assert_eq!(every_column(&reload(&pool, row.id).await?), before);
    }
    assert!(
        discard(&pool, "other", parked.id).await?.is_none(),
        "another tenant's"
    );
    assert!(discard(&pool, TENANT, parked.id).await?.is_some());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn bulk_discard_takes_what_its_count_matched_a_page_at_a_time(pool: PgPool) -> Checked {
    let mut lane_one = Vec::new();
    for _ in 0..5 {
        lane_one.push(parked(&pool, command(), "exceptions1").await?);
    }
    let lane_two = parked(&pool, command(), "exceptions2").await?;
    let other_type = parked(
        &pool,
        cmdbus_store::NewCommand {
            kind: "invoice.void".to_owned(),
            ..command()
        },
        "exceptions1",
    )
    .await?;
    let bound = db_now(&pool).await?;
    let later = parked(&pool, command(), "exceptions1").await?;

    let filter = DiscardFilter {
        kind: Some("invoice.send"),
        lane: Some("exceptions1"),
        error_code: Some("boom"),
        until: Some(bound),
        ..parked_failures()
    };
    let matched = count_discardable(&pool, &filter).await?;
    assert_eq!(matched, 5);
    let wrong_code = DiscardFilter {
        error_code: Some("other"),
        ..filter
    };
    assert_eq!(count_discardable(&pool, &wrong_code).await?, 0);
    let selection = [lane_one[0].id, lane_two.id];
    let chosen = DiscardFilter {
        ids: Some(&selection),
        until: Some(bound),
        ..parked_failures()
    };
    assert_eq!(count_discardable(&pool, &chosen).await?, 2);

    let first = discard_page(&pool, &filter, None, 3).await?;
    assert_eq!(first.len(), 3, "a page is at most its limit");
    let second = discard_page(&pool, &filter, first.last().map(|row| row.id), 3).await?;
    assert_eq!((first.len() + second.len()) as i64, matched);
    for row in first.iter().chain(&second) {
        assert_eq!(status(row), Status::Discarded);
        assert!(lane_one.iter().any(|parked| parked.id == row.id));
    }
    for untouched in [&lane_two, &other_type, &later] {
        assert_eq!(status(&reload(&pool, untouched.id).await?), Status::Fail);
    }
    assert_eq!(count_discardable(&pool, &filter).await?, 0, "done once");
    Ok(())
}
