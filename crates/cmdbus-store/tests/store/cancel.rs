//! `cancel`: a command that has not started ends `cancelled` at once; a running one is asked to
//! stop (`cancel_requested`), which its heartbeat reports; anything else is left alone.

use cmdbus_domain::Status;
use cmdbus_store::{Outcome, cancel, heartbeat};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_command_not_yet_started_is_cancelled_at_once(pool: PgPool) -> Checked {
    let recorded = submit_one(&pool, command()).await?;
    let waiting = queued(&pool, command()).await?;

    for row in [recorded, waiting] {
        let cancelled = cancel(&pool, TENANT, row.id).await?.expect("cancellable");
        assert_eq!(status(&cancelled), Status::Cancelled);
        assert!(cancelled.cancel_requested);
        assert!(cancelled.finished_at.is_some());
        assert_eq!(cancelled.redeliver_at, None, "nothing owed to the broker");
        assert!(cancelled.version > row.version);
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_running_command_is_asked_to_stop_and_its_heartbeat_says_so(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");

    let asked = cancel(&pool, TENANT, held.id)
        .await?
        .expect("a run can be asked to stop");

    assert_eq!(status(&asked), Status::Running);
    assert!(asked.cancel_requested);
    assert_eq!(asked.finished_at, None);
    assert_eq!(
        (asked.claim, asked.lease_until),
        (held.claim, held.lease_until),
        "the run keeps its claim"
    );
    assert_eq!(
        heartbeat(&pool, &[run(&held)], LEASE).await?,
        vec![(run(&held).claim, true, true)]
    );
    assert!(
        cancel(&pool, TENANT, held.id).await?.is_none(),
        "asked once"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_finished_command_or_another_tenants_is_left_alone(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let done = finish(&pool, &held, Outcome::Success(json!(1)))
        .await?
        .remove(0);
    let waiting = queued(&pool, command()).await?;

    assert!(cancel(&pool, TENANT, done.id).await?.is_none());
    assert!(cancel(&pool, "globex", waiting.id).await?.is_none());
    assert_eq!(
        every_column(&reload(&pool, done.id).await?),
        every_column(&done)
    );
    assert_eq!(
        every_column(&reload(&pool, waiting.id).await?),
        every_column(&waiting)
    );
    Ok(())
}
