//! Reading a tenant's commands (`list`) and the type catalogue: a page is newest first, names only
//! its filters, and a status or type filter looks through at most `LIST_WINDOW` commands and says
//! where it stopped.

use cmdbus_domain::TypeInfo;
use cmdbus_store::{LIST_WINDOW, ListFilter, NewCommand, list, list_types, register_types};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::*;

fn ids(rows: &[cmdbus_store::CommandRow]) -> Vec<Uuid> {
    rows.iter().map(|row| row.id).collect()
}

fn page(limit: i64) -> ListFilter {
    ListFilter {
        limit,
        ..ListFilter::default()
    }
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_page_is_newest_first_within_its_filters_and_its_tenant(pool: PgPool) -> Checked {
    let oldest = submit_one(&pool, command()).await?;
    let mail = submit_one(
        &pool,
        NewCommand {
            kind: "mail.send".to_owned(),
            ..command()
        },
    )
    .await?;
    let alice = queued(
        &pool,
        NewCommand {
            subject: Some("alice".to_owned()),
            ..command()
        },
    )
    .await?;
    submit_one(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ..command()
        },
    )
    .await?;

    let all = list(&pool, TENANT, &page(10)).await?;
    let first_two = list(&pool, TENANT, &page(2)).await?;
    let older = list(
        &pool,
        TENANT,
        &ListFilter {
            before: Some(mail.id),
            ..page(10)
        },
    )
    .await?;
    let queued_only = list(
        &pool,
        TENANT,
        &ListFilter {
            status: Some("queue".to_owned()),
            ..page(10)
        },
    )
    .await?;
    let by_kind = list(
        &pool,
        TENANT,
        &ListFilter {
            kind: Some("mail.send".to_owned()),
            ..page(10)
        },
    )
    .await?;
    let by_subject = list(
        &pool,
        TENANT,
        &ListFilter {
            subject: Some("alice".to_owned()),
            ..page(10)
        },
    )
    .await?;
    let by_ids = list(
        &pool,
        TENANT,
        &ListFilter {
            ids: Some(vec![oldest.id, alice.id]),
            ..page(10)
        },
    )
    .await?;

    assert_eq!(ids(&all.rows), vec![alice.id, mail.id, oldest.id]);
    assert_eq!(ids(&first_two.rows), vec![alice.id, mail.id]);
    assert_eq!(ids(&older.rows), vec![oldest.id]);
    assert_eq!(ids(&queued_only.rows), vec![alice.id]);
    assert_eq!(ids(&by_kind.rows), vec![mail.id]);
    assert_eq!(ids(&by_subject.rows), vec![alice.id]);
    assert_eq!(ids(&by_ids.rows), vec![alice.id, oldest.id]);
    assert!(
        [&all, &queued_only, &by_kind]
            .iter()
            .all(|listed| listed.scanned_to.is_none())
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_status_filter_stops_after_a_window_and_says_where(pool: PgPool) -> Checked {
    let oldest = queued(&pool, command()).await?;
    let newer: Vec<NewCommand> = (0..LIST_WINDOW).map(|_| command()).collect();
    let newer = submit(&pool, &newer).await?;
    let window_end = newer.iter().map(|s| s.row.id).min().expect("a full window");
    let filter = ListFilter {
        status: Some("queue".to_owned()),
        ..page(10)
    };

    let first = list(&pool, TENANT, &filter).await?;

    assert!(
        first.rows.is_empty(),
        "the queued command is older than the window"
    );
    assert_eq!(first.scanned_to, Some(window_end));
    let next = list(
        &pool,
        TENANT,
        &ListFilter {
            before: first.scanned_to,
            ..filter
        },
    )
    .await?;
    assert_eq!(ids(&next.rows), vec![oldest.id]);
    assert_eq!(next.scanned_to, None, "fewer than a window left");
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn registering_a_type_again_updates_it(pool: PgPool) -> Checked {
    let first = TypeInfo {
        name: "invoice.send".to_owned(),
        description: "Sends an invoice".to_owned(),
        max_attempts: 3,
        example: Some(serde_json::json!({"invoice": 1})),
        payload_schema: Some(serde_json::json!({"type": "object"})),
        result_schema: None,
    };
    let other = TypeInfo {
        name: "mail.send".to_owned(),
        max_attempts: 1,
        example: None,
        ..first.clone()
    };
    register_types(&pool, &[other.clone(), first.clone()]).await?;
    let updated = TypeInfo {
        description: "Sends it again".to_owned(),
        max_attempts: 5,
        // A worker that re-registers with other types replaces the schemas too.
        payload_schema: Some(serde_json::json!({"type": "object", "required": ["invoice"]})),
        result_schema: Some(serde_json::json!({"type": "string"})),
        ..first.clone()
    };

    register_types(&pool, std::slice::from_ref(&updated)).await?;

    let listed = list_types(&pool).await?;
    let seen: Vec<_> = listed
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.description.as_str(),
                t.max_attempts,
                t.example.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("invoice.send", "Sends it again", 5, updated.example.clone()),
            ("mail.send", "Sends an invoice", 1, None),
        ]
    );
    assert_eq!(listed[0].payload_schema, updated.payload_schema);
    assert_eq!(listed[0].result_schema, updated.result_schema);
    Ok(())
}
