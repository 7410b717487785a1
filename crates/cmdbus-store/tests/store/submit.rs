//! Recording commands (`insert`, `mark_queued`) and reading them back: a command is recorded
//! once per `(tenant, idempotency scope, idempotency key)`, and a broker confirm moves only rows still `new`;
//! the trace context a command was submitted in goes along with its row, message and events.

use cmdbus_domain::{Event, Status, TraceParent};
use cmdbus_store::{NewCommand, get, get_many, lookup, mark_queued};
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_batch_is_recorded_new_in_the_order_given(pool: PgPool) -> Checked {
    let commands = [
        NewCommand {
            priority: 7,
            subject: Some("user-1".to_owned()),
            ..command()
        },
        NewCommand {
            payload: json!([1, 2]),
            max_attempts: 5,
            ..keyed("k")
        },
    ];

    let submitted = submit(&pool, &commands).await?;

    assert_eq!(submitted.len(), 2);
    for (given, recorded) in commands.iter().zip(&submitted) {
        let row = &recorded.row;
        assert!(recorded.created);
        assert_eq!(row.id, given.id);
        assert_eq!(status(row), Status::New);
        assert_eq!(
            (row.tenant.as_str(), row.kind.as_str()),
            (TENANT, "invoice.send")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(row.payload.get()).ok(),
            Some(given.payload.clone())
        );
        assert_eq!(
            (row.priority, row.max_attempts),
            (given.priority, given.max_attempts)
        );
        assert_eq!(
            (&row.ordering_key, &row.subject),
            (&given.ordering_key, &given.subject)
        );
        assert_eq!((row.generation, row.attempt, row.queued_at), (0, 0, None));
        assert_eq!(
            every_column(&reload(&pool, row.id).await?),
            every_column(row)
        );
    }
    assert!(submitted[0].row.version < submitted[1].row.version);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_repeated_idempotency_key_returns_the_earlier_command(pool: PgPool) -> Checked {
    let first = NewCommand {
        idempotency_key: Some("order-1".to_owned()),
        ..command()
    };
    let original = submit_one(&pool, first.clone()).await?;
    let repeat = NewCommand {
        payload: json!("different"),
        ..first.clone()
    };
    let repeat = NewCommand {
        id: uuid::Uuid::now_v7(),
        ..repeat
    };

    let again = submit(&pool, std::slice::from_ref(&repeat))
        .await?
        .remove(0);

    assert!(!again.created);
    assert_eq!(every_column(&again.row), every_column(&original));
    assert!(
        lookup(&pool, repeat.id).await?.is_none(),
        "nothing else was recorded"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_same_idempotency_key_twice_in_one_batch_records_one_command(pool: PgPool) -> Checked {
    let first = NewCommand {
        idempotency_key: Some("order-1".to_owned()),
        ..command()
    };
    let second = NewCommand {
        id: uuid::Uuid::now_v7(),
        ..first.clone()
    };

    let submitted = submit(&pool, &[first.clone(), second.clone()]).await?;

    assert_eq!((submitted[0].created, submitted[1].created), (true, false));
    assert_eq!(submitted[1].row.id, first.id);
    assert!(lookup(&pool, second.id).await?.is_none());
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn an_idempotency_key_belongs_to_its_tenant(pool: PgPool) -> Checked {
    let ours = NewCommand {
        idempotency_key: Some("order-1".to_owned()),
        ..command()
    };
    let theirs = NewCommand {
        id: uuid::Uuid::now_v7(),
        tenant: "globex".to_owned(),
        ..ours.clone()
    };

    let submitted = submit(&pool, &[ours, theirs.clone()]).await?;

    assert!(submitted.iter().all(|s| s.created));
    assert_eq!(submitted[1].row.id, theirs.id);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn an_idempotency_key_belongs_to_whoever_submitted_under_it(pool: PgPool) -> Checked {
    // An end user (scope: its subject) takes "order-1" first, for itself...
    let users = NewCommand {
        idempotency_key: Some("order-1".to_owned()),
        idempotency_scope: Some("u1".to_owned()),
        subject: Some("u1".to_owned()),
        ..command()
    };
    let users = submit_one(&pool, users).await?;
    // ...which takes it from neither the backend (no scope), even for that same subject, nor
    // another end user.
    let backends = NewCommand {
        id: uuid::Uuid::now_v7(),
        idempotency_key: Some("order-1".to_owned()),
        idempotency_scope: None,
        subject: Some("u1".to_owned()),
        ..command()
    };
    let other_users = NewCommand {
        id: uuid::Uuid::now_v7(),
        idempotency_key: Some("order-1".to_owned()),
        idempotency_scope: Some("u2".to_owned()),
        subject: Some("u2".to_owned()),
        ..command()
    };

    let submitted = submit(&pool, &[backends.clone(), other_users.clone()]).await?;

    assert!(submitted.iter().all(|s| s.created));
    assert_eq!(
        (submitted[0].row.id, submitted[1].row.id),
        (backends.id, other_users.id)
    );
    // Within one scope the key still names one command.
    let again = NewCommand {
        id: uuid::Uuid::now_v7(),
        idempotency_key: Some("order-1".to_owned()),
        idempotency_scope: Some("u1".to_owned()),
        subject: Some("u1".to_owned()),
        ..command()
    };
    let again = submit(&pool, &[again]).await?.remove(0);
    assert!(!again.created);
    assert_eq!(again.row.id, users.id);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_broker_confirm_queues_only_rows_still_new(pool: PgPool) -> Checked {
    let waiting = submit_one(&pool, command()).await?;
    let raced = submit_one(&pool, command()).await?;
    let running = claim_one(&pool, &raced)
        .await?
        .expect("a fast worker claimed it");
    let before = db_now(&pool).await?;

    let marked = mark_queued(&pool, &[running.id, waiting.id], REDELIVER_AFTER).await?;

    assert_eq!(
        marked.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![waiting.id]
    );
    let queued = &marked[0];
    assert_eq!(status(queued), Status::Queue);
    let queued_at = queued.queued_at.expect("confirmed");
    assert!(queued_at >= before);
    assert_eq!(
        queued.redeliver_at,
        Some(queued_at + chrono::Duration::seconds(60)),
        "looked at again {REDELIVER_AFTER:?} after the confirm"
    );
    assert!(queued.version > waiting.version);
    assert_eq!(
        every_column(&reload(&pool, running.id).await?),
        every_column(&running)
    );
    assert!(
        mark_queued(&pool, &[waiting.id], REDELIVER_AFTER)
            .await?
            .is_empty(),
        "once"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_tenant_reads_only_its_own_commands(pool: PgPool) -> Checked {
    let ours = submit_one(&pool, command()).await?;
    let theirs = submit_one(
        &pool,
        NewCommand {
            tenant: "globex".to_owned(),
            ..command()
        },
    )
    .await?;

    assert!(get(&pool, TENANT, ours.id).await?.is_some());
    assert!(get(&pool, TENANT, theirs.id).await?.is_none());
    let many = get_many(&pool, TENANT, &[theirs.id, ours.id]).await?;
    assert_eq!(
        many.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![ours.id]
    );
    assert!(
        lookup(&pool, theirs.id).await?.is_some(),
        "workers look up any tenant's"
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_commands_trace_context_is_stored_and_carried_in_its_message_and_events(
    pool: PgPool,
) -> Checked {
    let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .expect("a traceparent");
    let traced = queued(
        &pool,
        NewCommand {
            traceparent: Some(parent),
            ..command()
        },
    )
    .await?;
    let untraced = queued(&pool, command()).await?;

    assert_eq!(traced.trace_parent(), Some(parent));
    assert_eq!(traced.routing().traceparent, Some(parent));
    assert_eq!(traced.event().traceparent, Some(parent));
    // The claim hands the worker the row's context, for runs whose message lost its header.
    let running = claim_one(&pool, &traced).await?.expect("claimed");
    assert_eq!(running.trace_parent(), Some(parent));
    // Events carry it as text, and one that does not read is dropped, never the event.
    let event = serde_json::to_value(traced.event()).expect("an event");
    assert_eq!(event["traceparent"], json!(parent.to_string()));
    let mut garbled = event.clone();
    garbled["traceparent"] = json!("not a traceparent");
    let read: Event = serde_json::from_value(garbled).expect("still an event");
    assert_eq!((read.traceparent, read.command.id), (None, traced.id));

    assert_eq!(untraced.trace_parent(), None);
    assert_eq!(untraced.routing().traceparent, None);
    let event = serde_json::to_value(untraced.event()).expect("an event");
    assert!(
        event.get("traceparent").is_none(),
        "absent, not null: {event}"
    );
    // The column holds a version 00 traceparent or nothing.
    let refused = sqlx::query("update commands set traceparent = 'garbage' where id = $1")
        .bind(untraced.id)
        .execute(&pool)
        .await;
    let constraint = match refused {
        Err(sqlx::Error::Database(error)) => error.constraint().map(str::to_owned),
        other => panic!("a malformed traceparent was stored: {other:?}"),
    };
    assert_eq!(constraint.as_deref(), Some("commands_traceparent_check"));
    Ok(())
}
