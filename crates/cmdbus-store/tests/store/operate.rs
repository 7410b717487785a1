//! The operators' statements: bulk cancel (`count_cancellable`, `cancel_page`) takes only what
//! its filter and bound match, a page at a time; a pause (`pause_type`, `resume_type`,
//! `paused_types`) is kept for registered types only and says whether it changed anything; the
//! audit trail (`record_audit`, `list_audit`) is a tenant's, newest first, paged.

use cmdbus_domain::{Status, TypeInfo};
use cmdbus_store::{
    AuditEntry, CancelFilter, Outcome, cancel_page, count_cancellable, list_audit, pause_type,
    paused_types, record_audit, register_types, resume_type,
};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

const UNFINISHED: [&str; 3] = ["new", "queue", "running"];

fn everything() -> CancelFilter<'static> {
    CancelFilter {
        tenant: TENANT,
        ids: None,
        kind: None,
        error_code: None,
        since: None,
        until: None,
        statuses: &UNFINISHED,
    }
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn bulk_cancel_takes_the_unfinished_commands_before_its_bound_a_page_at_a_time(
    pool: PgPool,
) -> Checked {
    let recorded = submit_one(&pool, command()).await?;
    let waiting = queued(&pool, command()).await?;
    let running = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let done = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(&pool, &done, Outcome::Success(json!(null))).await?;
    let bound = db_now(&pool).await?;
    let later = queued(&pool, command()).await?;

    let filter = CancelFilter {
        until: Some(bound),
        ..everything()
    };
    assert_eq!(count_cancellable(&pool, &filter).await?, 3);
    let queued_only = CancelFilter {
        statuses: &["queue"],
        ..filter
    };
    assert_eq!(count_cancellable(&pool, &queued_only).await?, 1);

    let first = cancel_page(&pool, &filter, None, 2).await?;
    assert_eq!(first.len(), 2, "a page is at most its limit");
    let after = first.last().map(|row| row.id);
    let second = cancel_page(&pool, &filter, after, 2).await?;
    let changed: Vec<_> = first.iter().chain(&second).collect();
    assert_eq!(changed.len(), 3);
    for row in &changed {
        assert!(row.cancel_requested);
        let expected = if row.id == running.id {
            Status::Running // asked to stop; its handler ends it
        } else {
            Status::Cancelled
        };
        assert_eq!(status(row), expected);
    }
    let ids: Vec<_> = changed.iter().map(|row| row.id).collect();
    assert!(ids.contains(&recorded.id) && ids.contains(&waiting.id));
    assert_eq!(status(&reload(&pool, done.id).await?), Status::Success);
    assert_eq!(
        status(&reload(&pool, later.id).await?),
        Status::Queue,
        "created after the bound"
    );
    assert_eq!(count_cancellable(&pool, &filter).await?, 0, "asked once");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn bulk_cancel_by_ids_leaves_other_commands_and_tenants_alone(pool: PgPool) -> Checked {
    let chosen = queued(&pool, command()).await?;
    let other = queued(&pool, command()).await?;
    let ids = [chosen.id, other.id];
    let selection = CancelFilter {
        ids: Some(&ids[..1]),
        ..everything()
    };
    let elsewhere = CancelFilter {
        tenant: "someone-else",
        ids: Some(&ids),
        ..everything()
    };
    assert_eq!(count_cancellable(&pool, &elsewhere).await?, 0);
    assert!(cancel_page(&pool, &elsewhere, None, 10).await?.is_empty());
    let cancelled = cancel_page(&pool, &selection, None, 10).await?;
    assert_eq!(
        cancelled.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![chosen.id]
    );
    assert_eq!(status(&reload(&pool, other.id).await?), Status::Queue);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_pause_is_kept_for_a_registered_type_and_says_whether_it_changed(
    pool: PgPool,
) -> Checked {
    register_types(
        &pool,
        &[TypeInfo {
            name: "invoice.send".to_owned(),
            description: "sends".to_owned(),
            max_attempts: 3,
            example: None,
            payload_schema: None,
            result_schema: None,
        }],
    )
    .await?;
    assert!(pause_type(&pool, "no.such", "key:x").await?.is_none());
    assert!(resume_type(&pool, "no.such").await?.is_none());

    let first = pause_type(&pool, "invoice.send", "key:x")
        .await?
        .expect("registered");
    assert!(first.changed && first.paused_at.is_some());
    let again = pause_type(&pool, "invoice.send", "key:y")
        .await?
        .expect("registered");
    assert!(!again.changed);
    assert_eq!(again.paused_at, first.paused_at, "the first pause is kept");
    assert_eq!(paused_types(&pool).await?, vec!["invoice.send".to_owned()]);

    // A worker registering the type again does not undo the pause.
    register_types(
        &pool,
        &[TypeInfo {
            name: "invoice.send".to_owned(),
            description: "sends, v2".to_owned(),
            max_attempts: 3,
            example: None,
            payload_schema: None,
            result_schema: None,
        }],
    )
    .await?;
    assert_eq!(paused_types(&pool).await?.len(), 1);

    assert_eq!(resume_type(&pool, "invoice.send").await?, Some(true));
    assert_eq!(resume_type(&pool, "invoice.send").await?, Some(false));
    assert!(paused_types(&pool).await?.is_empty());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_audit_trail_is_a_tenants_newest_first_and_paged(pool: PgPool) -> Checked {
    let filter = json!({"type": "invoice.send"});
    for (tenant, action, count) in [
        (TENANT, "cancel", 3),
        ("someone-else", "retry", 9),
        (TENANT, "pause", 1),
        (TENANT, "retry", 2),
    ] {
        let entry = AuditEntry {
            tenant,
            actor: "key:x",
            action,
            filter: &filter,
            count,
        };
        record_audit(&pool, &entry).await?;
    }
    let all = list_audit(&pool, TENANT, None, 10).await?;
    let seen: Vec<_> = all
        .iter()
        .map(|row| (row.action.as_str(), row.count))
        .collect();
    assert_eq!(seen, vec![("retry", 2), ("pause", 1), ("cancel", 3)]);
    assert_eq!(all[0].filter.0, filter);
    let page = list_audit(&pool, TENANT, None, 2).await?;
    let rest = list_audit(&pool, TENANT, page.last().map(|row| row.id), 2).await?;
    assert_eq!(
        rest.iter()
            .map(|row| row.action.as_str())
            .collect::<Vec<_>>(),
        vec!["cancel"]
    );
    // The action is one of those the constraint names.
    let refused = AuditEntry {
        tenant: TENANT,
        actor: "key:x",
        action: "delete",
        filter: &filter,
        count: 1,
    };
    assert!(record_audit(&pool, &refused).await.is_err());
    Ok(())
}
