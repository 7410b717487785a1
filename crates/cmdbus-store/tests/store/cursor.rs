//! The resume cursor: a snapshot. What changed after it is exactly what a reader holding it has
//! not seen — including changes that drew a lower version but committed later — and what is read
//! with it comes back with the next cursor, so following cursors loses nothing and repeats nothing.

use cmdbus_store::{
    Cursor, ListFilter, NewCommand, Outcome, Scope, cancel, changed_ids_after, changes_after,
    heartbeat, list,
};
use sqlx::{Acquire as _, PgPool};
use uuid::Uuid;

use crate::common::*;

/// The cursor of the database as it is now.
async fn now_cursor(pool: &PgPool) -> Result<Cursor, cmdbus_store::StoreError> {
    Ok(changes_after(pool, None, Scope::Everything, 100)
        .await?
        .cursor)
}

fn ids(rows: &[cmdbus_store::CommandRow]) -> Vec<Uuid> {
    rows.iter().map(|row| row.id).collect()
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_cursor_yields_the_changes_after_it_and_then_nothing(pool: PgPool) -> Checked {
    let before = submit_one(&pool, command()).await?;
    let start = changes_after(&pool, None, Scope::Everything, 100).await?;
    assert!(start.rows.is_empty(), "no cursor reads only the snapshot");
    let first = submit_one(&pool, command()).await?;
    let second = queued(&pool, command()).await?;
    let moved = queued(&pool, command()).await?;
    let moved = claim_one(&pool, &moved).await?.expect("claimed");

    let read = changes_after(&pool, Some(&start.cursor), Scope::Everything, 100).await?;

    assert_eq!(
        ids(&read.rows),
        vec![first.id, second.id, moved.id],
        "oldest version first"
    );
    assert!(!read.rows.iter().any(|row| row.id == before.id));
    assert_eq!(
        read.rows[2].version, moved.version,
        "each row in its latest state"
    );
    assert!(!read.truncated);
    let rest = changes_after(&pool, Some(&read.cursor), Scope::Everything, 100).await?;
    assert!(rest.rows.is_empty(), "read again: {:?}", ids(&rest.rows));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_change_that_commits_after_a_later_one_is_not_lost_in_any_scope(pool: PgPool) -> Checked {
    let alice = || NewCommand {
        subject: Some("alice".to_owned()),
        ..command()
    };
    let slow = queued(&pool, alice()).await?;
    let fast = queued(&pool, alice()).await?;
    let start = now_cursor(&pool).await?;

    // The slow transaction draws its version first and commits last.
    let mut conn = pool.acquire().await?;
    let mut slow_tx = conn.begin().await?;
    let slow_change = cancel(&mut *slow_tx, TENANT, slow.id)
        .await?
        .expect("cancelled");
    let fast_change = cancel(&pool, TENANT, fast.id).await?.expect("cancelled");
    assert!(slow_change.version < fast_change.version);

    let both = [slow.id, fast.id];
    let scopes = [
        Scope::Everything,
        Scope::Tenant(TENANT),
        Scope::Subject(TENANT, "alice"),
        Scope::Ids(TENANT, &both),
    ];
    let mut cursors = Vec::new();
    for scope in scopes {
        let during = changes_after(&pool, Some(&start), scope, 100).await?;
        assert_eq!(
            ids(&during.rows),
            vec![fast.id],
            "{scope:?}: an uncommitted change cannot be read"
        );
        cursors.push(during.cursor);
    }
    slow_tx.commit().await?;

    for (scope, cursor) in scopes.into_iter().zip(&cursors) {
        let after = changes_after(&pool, Some(cursor), scope, 100).await?;
        assert_eq!(
            ids(&after.rows),
            vec![slow.id],
            "{scope:?}: resuming past version {} still finds version {}",
            fast_change.version,
            slow_change.version
        );
        let ids_after = changed_ids_after(&pool, cursor, scope, 100).await?;
        assert_eq!(ids_after.ids, vec![slow.id], "{scope:?}");
        assert_eq!(ids_after.versions, vec![slow_change.version], "{scope:?}");
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_scope_reads_only_its_tenant_subject_or_ids(pool: PgPool) -> Checked {
    let start = now_cursor(&pool).await?;
    let plain = submit_one(&pool, command()).await?;
    let alice = submit_one(
        &pool,
        NewCommand {
            subject: Some("alice".to_owned()),
            ..command()
        },
    )
    .await?;
    let theirs = submit_one(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ..command()
        },
    )
    .await?;

    let tenant = changes_after(&pool, Some(&start), Scope::Tenant(TENANT), 100).await?;
    let subject = changes_after(&pool, Some(&start), Scope::Subject(TENANT, "alice"), 100).await?;
    let named = changes_after(
        &pool,
        Some(&start),
        Scope::Ids(TENANT, &[plain.id, theirs.id]),
        100,
    )
    .await?;
    let everything = changes_after(&pool, Some(&start), Scope::Everything, 100).await?;

    assert_eq!(ids(&tenant.rows), vec![plain.id, alice.id]);
    assert_eq!(ids(&subject.rows), vec![alice.id]);
    assert_eq!(
        ids(&named.rows),
        vec![plain.id],
        "another tenant's id is not read"
    );
    assert_eq!(ids(&everything.rows), vec![plain.id, alice.id, theirs.id]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn more_changes_than_the_limit_are_marked_truncated(pool: PgPool) -> Checked {
    let start = now_cursor(&pool).await?;
    let first = submit_one(&pool, command()).await?;
    let second = submit_one(&pool, command()).await?;
    let third = submit_one(&pool, command()).await?;

    let page = changes_after(&pool, Some(&start), Scope::Tenant(TENANT), 2).await?;
    let whole = changes_after(&pool, Some(&start), Scope::Tenant(TENANT), 3).await?;
    let page_ids = changed_ids_after(&pool, &start, Scope::Tenant(TENANT), 2).await?;

    assert!(page.truncated);
    assert_eq!(ids(&page.rows), vec![first.id, second.id]);
    assert!(!whole.truncated);
    assert_eq!(ids(&whole.rows), vec![first.id, second.id, third.id]);
    assert!(page_ids.truncated);
    assert_eq!(page_ids.ids, vec![first.id, second.id]);
    assert_eq!(page_ids.versions, vec![first.version, second.version]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_heartbeat_is_not_a_change(pool: PgPool) -> Checked {
    let held = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let start = now_cursor(&pool).await?;

    heartbeat(&pool, &[run(&held)], LEASE).await?;
    let read = changes_after(&pool, Some(&start), Scope::Everything, 100).await?;

    assert!(
        read.rows.is_empty(),
        "a heartbeat showed: {:?}",
        ids(&read.rows)
    );
    finish(&pool, &held, Outcome::Success(serde_json::json!(1))).await?;
    let read = changes_after(&pool, Some(&start), Scope::Everything, 100).await?;
    assert_eq!(ids(&read.rows), vec![held.id]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_listing_cursor_misses_no_later_change(pool: PgPool) -> Checked {
    let listed_row = submit_one(&pool, command()).await?;
    let page = list(
        &pool,
        TENANT,
        &ListFilter {
            limit: 10,
            ..ListFilter::default()
        },
    )
    .await?;
    assert_eq!(ids(&page.rows), vec![listed_row.id]);
    let later = submit_one(&pool, command()).await?;

    let read = changes_after(&pool, Some(&page.cursor), Scope::Tenant(TENANT), 100).await?;

    assert_eq!(
        ids(&read.rows),
        vec![later.id],
        "the listed row is not owed again"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_cursor_survives_its_text_form(pool: PgPool) -> Checked {
    let start = now_cursor(&pool).await?;
    let changed = submit_one(&pool, command()).await?;
    let parsed = Cursor::parse(start.as_str()).expect("a cursor the store handed out parses");

    let read = changes_after(&pool, Some(&parsed), Scope::Everything, 100).await?;

    assert_eq!(parsed, start);
    assert_eq!(ids(&read.rows), vec![changed.id]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_long_transaction_is_carried_from_cursor_to_cursor_until_it_commits(
    pool: PgPool,
) -> Checked {
    let slow = queued(&pool, command()).await?;
    let aborted = queued(&pool, command()).await?;
    let start = now_cursor(&pool).await?;
    let mut slow_conn = pool.acquire().await?;
    let mut slow_tx = slow_conn.begin().await?;
    cancel(&mut *slow_tx, TENANT, slow.id)
        .await?
        .expect("cancelled");
    let mut aborted_conn = pool.acquire().await?;
    let mut aborted_tx = aborted_conn.begin().await?;
    cancel(&mut *aborted_tx, TENANT, aborted.id)
        .await?
        .expect("cancelled");

    let mut cursor = start;
    for other in 0..2 {
        let moved = submit_one(&pool, command()).await?;
        let read = changes_after(&pool, Some(&cursor), Scope::Tenant(TENANT), 100).await?;
        assert_eq!(ids(&read.rows), vec![moved.id], "read {other}");
        cursor = read.cursor;
    }
    aborted_tx.rollback().await?;
    slow_tx.commit().await?;

    let read = changes_after(&pool, Some(&cursor), Scope::Tenant(TENANT), 100).await?;
    assert_eq!(
        ids(&read.rows),
        vec![slow.id],
        "the rolled-back change never shows"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_cursor_ahead_of_the_database_is_told_apart(pool: PgPool) -> Checked {
    let handed_out = now_cursor(&pool).await?;
    submit_one(&pool, command()).await?;
    let read = changed_ids_after(&pool, &handed_out, Scope::Everything, 100).await?;
    assert!(!read.ahead, "a cursor this database handed out");
    assert!(!handed_out.is_ahead_of(&read.cursor));

    let xmax: u64 = handed_out
        .as_str()
        .split(':')
        .nth(1)
        .and_then(|xmax| xmax.parse().ok())
        .expect("xmax");
    let ahead =
        Cursor::parse(&format!("{0}:{0}:", xmax + 1_000_000)).expect("a well-formed cursor");
    let read = changed_ids_after(&pool, &ahead, Scope::Everything, 100).await?;
    assert!(read.ahead, "never handed out by this database");
    assert!(read.ids.is_empty());
    Ok(())
}
