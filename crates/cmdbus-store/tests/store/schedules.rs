//! Schedules: the sweep's take (`take_due_schedules`) locks due rows so that a second sweep
//! passes them by, and once moved on (`advance_schedule`) they are not due; a schedule of an
//! unregistered type or a paused one is not taken; a declared schedule (`declare_schedule`) is
//! upserted by name, keeping its id and pause, and moves its next tick only for a new pattern.

use chrono::{Duration, Utc};
use cmdbus_domain::TypeInfo;
use cmdbus_store::{
    NewSchedule, advance_schedule, create_schedule, declare_schedule, pause_schedule,
    register_types, take_due_schedules,
};
use serde_json::json;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::common::*;

async fn register(pool: &PgPool, name: &str) -> Checked {
    register_types(
        pool,
        &[TypeInfo {
            name: name.to_owned(),
            description: "scheduled".to_owned(),
            max_attempts: 4,
            example: None,
            payload_schema: None,
            result_schema: None,
        }],
    )
    .await
}

fn schedule<'a>(kind: &'a str, cron: &'a str, next: chrono::DateTime<Utc>) -> NewSchedule<'a> {
    static PAYLOAD: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    NewSchedule {
        id: Uuid::now_v7(),
        tenant: TENANT,
        name: None,
        kind,
        payload: PAYLOAD.get_or_init(|| json!({"report": "daily"})),
        cron,
        timezone: "UTC",
        missed: "skip",
        next_run_at: next,
    }
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_due_schedule_is_taken_by_one_sweep_and_not_due_once_moved_on(pool: PgPool) -> Checked {
    register(&pool, "report.build").await?;
    let past = Utc::now() - Duration::seconds(5);
    let due = create_schedule(&pool, &schedule("report.build", "* * * * *", past)).await?;
    let later = Utc::now() + Duration::hours(1);
    create_schedule(&pool, &schedule("report.build", "0 * * * *", later)).await?;

    let mut first = pool.acquire().await?;
    let mut first = first.begin().await?;
    let taken = take_due_schedules(&mut first, 10).await?;
    assert_eq!(taken.len(), 1, "only the due one");
    assert_eq!(taken[0].row.id, due.id);
    assert_eq!(taken[0].max_attempts, 4, "its type's attempt budget");
    assert!(taken[0].swept_at >= due.next_run_at);

    // A second sweep meanwhile passes the locked row by.
    let mut second = pool.acquire().await?;
    let mut second = second.begin().await?;
    assert!(take_due_schedules(&mut second, 10).await?.is_empty());
    second.rollback().await?;

    let command = Uuid::now_v7();
    advance_schedule(&mut first, due.id, later, Some((past, command))).await?;
    first.commit().await?;
    let mut third = pool.acquire().await?;
    let mut third = third.begin().await?;
    assert!(
        take_due_schedules(&mut third, 10).await?.is_empty(),
        "moved on"
    );
    third.rollback().await?;
    let (last_tick, last_command): (Option<chrono::DateTime<Utc>>, Option<Uuid>) =
        sqlx::query_as("select last_tick_at, last_command from schedules where id = $1")
            .bind(due.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(last_command, Some(command));
    assert_eq!(
        last_tick.map(|at| at.timestamp_micros()),
        Some(past.timestamp_micros())
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_paused_schedule_or_one_of_an_unregistered_type_is_not_taken(pool: PgPool) -> Checked {
    register(&pool, "report.build").await?;
    let past = Utc::now() - Duration::seconds(5);
    let paused = create_schedule(&pool, &schedule("report.build", "* * * * *", past)).await?;
    let change = pause_schedule(&pool, TENANT, paused.id)
        .await?
        .expect("found");
    assert!(change.changed && change.row.paused_at.is_some());
    let again = pause_schedule(&pool, TENANT, paused.id)
        .await?
        .expect("found");
    assert!(!again.changed, "a second pause changes nothing");
    assert_eq!(again.row.paused_at, change.row.paused_at);
    assert!(
        pause_schedule(&pool, "other", paused.id).await?.is_none(),
        "another tenant's"
    );
    create_schedule(&pool, &schedule("not.registered", "* * * * *", past)).await?;

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    assert!(take_due_schedules(&mut tx, 10).await?.is_empty());
    tx.rollback().await?;
    // Registered at last: it is due.
    register(&pool, "not.registered").await?;
    let mut tx = conn.begin().await?;
    assert_eq!(take_due_schedules(&mut tx, 10).await?.len(), 1);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_declared_schedule_is_upserted_by_name_keeping_its_id_and_pause(pool: PgPool) -> Checked {
    let next = Utc::now() + Duration::hours(1);
    let first = NewSchedule {
        name: Some("nightly"),
        ..schedule("report.build", "0 3 * * *", next)
    };
    let declared = declare_schedule(&pool, &first).await?;
    assert!(declared.declared);
    pause_schedule(&pool, TENANT, declared.id).await?;

    // The same pattern: the ticks go on where they were; a new payload is taken.
    let payload = json!({"report": "weekly"});
    let same = NewSchedule {
        id: Uuid::now_v7(),
        payload: &payload,
        next_run_at: next + Duration::hours(5),
        ..first.clone()
    };
    let updated = declare_schedule(&pool, &same).await?;
    assert_eq!(updated.id, declared.id);
    assert_eq!(updated.payload.0, payload);
    assert_eq!(updated.next_run_at, declared.next_run_at);
    assert!(updated.paused_at.is_some(), "the operator's pause is kept");

    // A new pattern: its own next tick.
    let moved = NewSchedule {
        id: Uuid::now_v7(),
        cron: "30 4 * * *",
        next_run_at: next + Duration::hours(2),
        ..first.clone()
    };
    let updated = declare_schedule(&pool, &moved).await?;
    assert_eq!(updated.id, declared.id);
    assert_eq!(updated.cron, "30 4 * * *");
    assert_eq!(
        updated.next_run_at.timestamp_micros(),
        moved.next_run_at.timestamp_micros()
    );
    let count: i64 = sqlx::query_scalar("select count(*) from schedules")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 1);
    Ok(())
}
