//! Searching and counting (`list` with the console's filters, `count_matching`,
//! `counts_by_status`, `fold`): each filter finds exactly its commands; the counters equal a
//! count of the table through submits, finishes, replays, discards and deletes, folded or not;
//! and on a table of 200,000 commands no count reads `commands` sequentially.

use chrono::Duration as Span;
use cmdbus_domain::Status;
use cmdbus_store::{
    COUNT_WINDOW, ListFilter, NewCommand, Outcome, count_matching, counts_by_status, discard, fold,
    list, purge_finished, replay,
};
use serde_json::json;
use sqlx::{Acquire, PgPool};
use std::{collections::BTreeMap, time::Duration};
use uuid::Uuid;

use crate::common::*;

async fn found(pool: &PgPool, filter: ListFilter) -> Result<Vec<Uuid>, cmdbus_store::StoreError> {
    let listed = list(
        pool,
        TENANT,
        &ListFilter {
            limit: 100,
            ..filter
        },
    )
    .await?;
    Ok(listed.rows.iter().map(|row| row.id).collect())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn each_filter_finds_exactly_its_commands(pool: PgPool) -> Checked {
    let plain = queued(&pool, command()).await?;
    let keyed = queued(&pool, keyed("order-7")).await?;
    let once = submit_one(
        &pool,
        NewCommand {
            idempotency_key: Some("pay-1".to_owned()),
            ..command()
        },
    )
    .await?;
    let failed = parked(&pool, command(), "exceptions2").await?;
    let retrying = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(
        &pool,
        &retrying,
        Outcome::Retry(error("flaky"), Duration::from_secs(60)),
    )
    .await?;
    let other_tenant = submit_one(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ordering_key: Some("order-7".to_owned()),
            ..command()
        },
    )
    .await?;

    let by = |filter: ListFilter| found(&pool, filter);
    let full = plain.id.to_string();
    assert_eq!(
        by(ListFilter {
            ids: Some(vec![plain.id]),
            ..Default::default()
        })
        .await?,
        vec![plain.id]
    );
    let fragment = full.replace('-', "")[20..28].to_owned();
    assert_eq!(
        by(ListFilter {
            id_fragment: Some(fragment),
            ..Default::default()
        })
        .await?,
        vec![plain.id]
    );
    assert_eq!(
        by(ListFilter {
            ordering_key: Some("order-7".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![keyed.id],
        "not another tenant's {}",
        other_tenant.id
    );
    assert_eq!(
        by(ListFilter {
            idempotency_key: Some("pay-1".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![once.id]
    );
    assert_eq!(
        by(ListFilter {
            error_code: Some("flaky".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![retrying.id]
    );
    assert_eq!(
        by(ListFilter {
            error_code: Some("boom".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![failed.id]
    );
    assert_eq!(
        by(ListFilter {
            lane: Some("exceptions2".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![failed.id]
    );
    assert!(
        by(ListFilter {
            lane: Some("exceptions1".to_owned()),
            ..Default::default()
        })
        .await?
        .is_empty()
    );
    assert_eq!(
        by(ListFilter {
            status: Some("fail".to_owned()),
            ..Default::default()
        })
        .await?,
        vec![failed.id]
    );
    // A window of creation times, by the database's clock.
    let after_keyed = sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
        "select created_at from commands where id = $1",
    )
    .bind(once.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        by(ListFilter {
            created_after: Some(after_keyed),
            created_before: Some(after_keyed + Span::microseconds(1)),
            ..Default::default()
        })
        .await?,
        vec![once.id]
    );
    let everything = by(ListFilter {
        created_after: Some(plain.created_at),
        ..Default::default()
    })
    .await?;
    assert_eq!(everything.len(), 5);

    // Counted per status, exactly, with the same filters.
    let counted = count_matching(
        &pool,
        TENANT,
        &ListFilter {
            error_code: Some("flaky".to_owned()),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(counted.counts, vec![("queue".to_owned(), 1)]);
    assert!(counted.exact);
    Ok(())
}

/// The table's own count, per status: what the counters must equal.
async fn counted_by_scan(
    pool: &PgPool,
    kind: Option<&str>,
) -> Result<BTreeMap<String, i64>, cmdbus_store::StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from commands
          where tenant = $1 and ($2::text is null or type = $2) group by status",
    )
    .bind(TENANT)
    .bind(kind)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn counters(
    pool: &PgPool,
    kind: Option<&str>,
) -> Result<BTreeMap<String, i64>, cmdbus_store::StoreError> {
    Ok(counts_by_status(pool, TENANT, kind)
        .await?
        .into_iter()
        .collect())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_counters_equal_the_table_through_every_change(pool: PgPool) -> Checked {
    let check = |step: &'static str| {
        let pool = pool.clone();
        async move {
            for kind in [None, Some("invoice.send"), Some("mail.send")] {
                assert_eq!(
                    counters(&pool, kind).await?,
                    counted_by_scan(&pool, kind).await?,
                    "{step}, type {kind:?}"
                );
            }
            Ok::<_, cmdbus_store::StoreError>(())
        }
    };
    let mail = || NewCommand {
        kind: "mail.send".to_owned(),
        ..command()
    };
    submit(&pool, &[command(), command(), mail(), keyed("k")]).await?;
    check("submitted").await?;
    let mut running = Vec::new();
    for _ in 0..4 {
        running.push(
            claim_one(&pool, &queued(&pool, command()).await?)
                .await?
                .expect("run"),
        );
    }
    let other = queued(&pool, mail()).await?;
    check("queued and claimed").await?;
    finish(&pool, &running[0], Outcome::Success(json!(1))).await?;
    finish(&pool, &running[1], Outcome::Fail(error("boom"))).await?;
    finish(
        &pool,
        &running[2],
        Outcome::Retry(error("again"), Duration::from_secs(5)),
    )
    .await?;
    finish(&pool, &running[3], Outcome::Cancelled).await?;
    cmdbus_store::cancel(&pool, TENANT, other.id).await?;
    check("finished").await?;
    fold(
        &pool,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    )
    .await?;
    let folded: i64 = sqlx::query_scalar(
        "select count(*) from (select 1 from command_counts
                                group by tenant, type, status having count(*) > 1) k",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(folded, 0, "one row per key once folded");
    check("folded").await?;
    replay(&pool, TENANT, running[1].id)
        .await?
        .expect("replayed");
    let lane = parked(&pool, command(), "exceptions1").await?;
    discard(&pool, TENANT, lane.id).await?.expect("discarded");
    check("replayed and discarded").await?;
    assert!(purge_finished(&pool, chrono::Utc::now() + Span::days(1), 100).await? > 0);
    check("deleted").await?;
    fold(
        &pool,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    )
    .await?;
    check("folded again").await?;
    assert_eq!(counters(&pool, Some("none.such")).await?, BTreeMap::new());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn no_count_reads_the_whole_table_of_200_000_commands(pool: PgPool) -> Checked {
    sqlx::query(
        "insert into commands (id, tenant, type, payload, status, error, lane, finished_at,
                               ordering_key)
         select gen_random_uuid(), $1, 'bulk.' || (n % 5), '{}',
                case when n % 100 = 0 then 'fail' when n % 3 = 0 then 'queue' else 'success' end,
                case when n % 100 = 0 then '{\"code\": \"boom\"}'::jsonb end,
                case when n % 100 = 0 then 'exceptions1' end,
                case when n % 3 = 0 and n % 100 <> 0 then null else now() end,
                'key-' || (n % 1000)
           from generate_series(1, 200000) n",
    )
    .bind(TENANT)
    .execute(&pool)
    .await?;
    sqlx::query("analyze commands").execute(&pool).await?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let all = counts_by_status(&mut *tx, TENANT, None).await?;
    assert_eq!(all.iter().map(|(_, n)| n).sum::<i64>(), 200_000);
    let of_type = counts_by_status(&mut *tx, TENANT, Some("bulk.1")).await?;
    assert_eq!(of_type.iter().map(|(_, n)| n).sum::<i64>(), 40_000);
    let by_key = count_matching(
        &mut *tx,
        TENANT,
        &ListFilter {
            ordering_key: Some("key-7".to_owned()),
            ..Default::default()
        },
    )
    .await?;
    assert!(!by_key.exact, "more than {COUNT_WINDOW} to look through");
    let parked = count_matching(
        &mut *tx,
        TENANT,
        &ListFilter {
            lane: Some("exceptions1".to_owned()),
            error_code: Some("boom".to_owned()),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        parked.counts,
        vec![(Status::Fail.as_str().to_owned(), 2_000)]
    );
    assert!(parked.exact, "the failures' index holds 2,000");
    let failed = list(
        &mut *tx,
        TENANT,
        &ListFilter {
            status: Some("fail".to_owned()),
            limit: 50,
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(failed.rows.len(), 50);
    assert!(
        failed.scanned_to.is_none(),
        "not a window: the failures' index"
    );
    // What this transaction's statements read: indexes and the counters, never a whole table.
    let (seq, idx): (i64, i64) = sqlx::query_as(
        "select seq_scan, coalesce(idx_scan, 0) from pg_stat_xact_user_tables
          where relid = 'commands'::regclass",
    )
    .fetch_one(&mut *tx)
    .await?;
    assert_eq!(seq, 0, "a sequential scan of commands");
    assert!(idx >= 3, "{idx} index scans");
    tx.commit().await?;
    Ok(())
}
