//! API keys, the token secret and a tenant's quota count: keys are found by the hash of their
//! secret, revoked once, and development keys never count as configured access.

use cmdbus_store::{
    COUNT_UNFINISHED_OF, COUNT_UNFINISHED_OF_SUBJECT, Db, NewKey, count_configured_keys,
    count_unfinished_of, count_unfinished_of_subject, create_key, find_key, heartbeat, key_by_id,
    list_keys, progress, revoke_development_keys, revoke_key, token_secret,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::*;

fn key<'a>(tenant: &'a str, hash: &'a [u8], scopes: &'a [String], development: bool) -> NewKey<'a> {
    NewKey {
        id: Uuid::now_v7(),
        tenant,
        name: "ci",
        scopes,
        secret_hash: hash,
        prefix: "cb_1234",
        development,
    }
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_key_is_found_by_its_hash_and_revoked_once(pool: PgPool) -> Checked {
    let scopes = vec!["submit".to_owned(), "read".to_owned()];
    let created = create_key(&pool, &key(TENANT, &[1; 32], &scopes, false)).await?;
    let theirs = create_key(&pool, &key("globex", &[2; 32], &scopes, false)).await?;

    assert_eq!(find_key(&pool, &[1; 32]).await?, Some(created.clone()));
    assert_eq!(find_key(&pool, &[3; 32]).await?, None);
    assert_eq!(key_by_id(&pool, created.id).await?, Some(created.clone()));
    assert_eq!(list_keys(&pool, Some(TENANT)).await?, vec![created.clone()]);
    assert_eq!(list_keys(&pool, None).await?.len(), 2);

    assert!(
        revoke_key(&pool, Some("globex"), created.id)
            .await?
            .is_none(),
        "not its tenant's"
    );
    let revoked = revoke_key(&pool, Some(TENANT), created.id)
        .await?
        .expect("revoked");
    assert!(revoked.revoked_at.is_some());
    assert!(
        revoke_key(&pool, None, created.id).await?.is_none(),
        "revoked once"
    );
    assert_eq!(
        find_key(&pool, &[1; 32]).await?.and_then(|k| k.revoked_at),
        revoked.revoked_at
    );
    assert!(
        key_by_id(&pool, theirs.id)
            .await?
            .is_some_and(|k| k.revoked_at.is_none())
    );
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_secret_hash_belongs_to_one_key(pool: PgPool) -> Checked {
    let scopes = vec!["read".to_owned()];
    create_key(&pool, &key(TENANT, &[1; 32], &scopes, false)).await?;

    let again = create_key(&pool, &key("globex", &[1; 32], &scopes, false)).await;

    let error = again.expect_err("a second key with the same secret");
    assert_eq!(error.constraint(), Some("api_keys_secret_hash"));
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn development_keys_never_count_as_configured_access(pool: PgPool) -> Checked {
    let scopes = vec!["admin".to_owned()];
    create_key(&pool, &key(TENANT, &[1; 32], &scopes, true)).await?;
    create_key(&pool, &key(TENANT, &[2; 32], &scopes, true)).await?;
    assert_eq!(count_configured_keys(&pool).await?, 0);
    let configured = create_key(&pool, &key(TENANT, &[3; 32], &scopes, false)).await?;
    assert_eq!(count_configured_keys(&pool).await?, 1);

    assert_eq!(revoke_development_keys(&pool).await?, 2);
    assert_eq!(revoke_development_keys(&pool).await?, 0);
    assert!(
        key_by_id(&pool, configured.id)
            .await?
            .is_some_and(|k| k.revoked_at.is_none())
    );
    revoke_key(&pool, None, configured.id).await?;
    assert_eq!(count_configured_keys(&pool).await?, 0);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_first_token_secret_stays_the_secret(pool: PgPool) -> Checked {
    let db = Db::direct(pool);

    let first = token_secret(&db, &[7; 32]).await?;
    let second = token_secret(&db, &[9; 32]).await?;

    assert_eq!(first, vec![7; 32]);
    assert_eq!(second, vec![7; 32]);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn a_tenants_quota_counts_its_unfinished_commands(pool: PgPool) -> Checked {
    submit_one(&pool, command()).await?;
    queued(&pool, command()).await?;
    let running = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    let done = claim_one(&pool, &queued(&pool, command()).await?)
        .await?
        .expect("claimed");
    finish(
        &pool,
        &done,
        cmdbus_store::Outcome::Success(serde_json::json!(1)),
    )
    .await?;
    queued(
        &pool,
        cmdbus_store::NewCommand {
            tenant: "globex".to_owned(),
            ..command()
        },
    )
    .await?;

    assert_eq!(count_unfinished_of(&pool, TENANT).await?, 3);
    finish(&pool, &running, cmdbus_store::Outcome::Fail(error("boom"))).await?;
    assert_eq!(count_unfinished_of(&pool, TENANT).await?, 2);
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn the_quota_count_reads_only_unfinished_commands_through_their_index(
    pool: PgPool,
) -> Checked {
    // 100,000 finished commands of two tenants, as a long-lived deployment holds, half of them
    // for one subject.
    sqlx::query(
        "insert into commands (id, tenant, type, payload, status, finished_at, subject)
         select gen_random_uuid(), case when i % 2 = 0 then $1 else 'globex' end,
                'demo.echo', '{}', 'success', now(), case when i % 4 < 2 then 'u1' end
           from generate_series(1, 100000) i",
    )
    .bind(TENANT)
    .execute(&pool)
    .await?;
    let for_u1 = || cmdbus_store::NewCommand {
        subject: Some("u1".to_owned()),
        ..command()
    };
    submit_one(&pool, command()).await?;
    queued(&pool, for_u1()).await?;
    claim_one(&pool, &queued(&pool, for_u1()).await?)
        .await?
        .expect("claimed");
    sqlx::query("analyze commands").execute(&pool).await?;

    assert_eq!(count_unfinished_of(&pool, TENANT).await?, 3);
    assert_eq!(count_unfinished_of(&pool, "globex").await?, 0);
    assert_eq!(count_unfinished_of_subject(&pool, TENANT, "u1").await?, 2);
    assert_eq!(count_unfinished_of_subject(&pool, TENANT, "u2").await?, 0);
    assert_eq!(count_unfinished_of_subject(&pool, "globex", "u1").await?, 0);
    for (statement, binds) in [
        (COUNT_UNFINISHED_OF, &[TENANT][..]),
        (COUNT_UNFINISHED_OF_SUBJECT, &[TENANT, "u1"][..]),
    ] {
        let explain = format!("explain (format json) {statement}");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(explain));
        for bind in binds {
            query = query.bind(*bind);
        }
        let plan: serde_json::Value = query.fetch_one(&pool).await?;
        let plan = plan.to_string();
        assert!(
            plan.contains(r#""Index Name":"commands_unfinished_per_subject""#),
            "the quota count does not use its index: {plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
    Ok(())
}

#[sqlx::test(migrator = "cmdbus_store::MIGRATOR")]
async fn behind_pgbouncer_the_fenced_writes_keep_their_contract_and_commit(
    pool: PgPool,
) -> Checked {
    // Same statements, same contracts, through the handle that wraps each in a transaction.
    let db = Db::through_pgbouncer(pool.clone());
    let waiting = queued(&pool, command()).await?;
    let claimed = cmdbus_store::claim(&db, &[delivery(&waiting)], "worker-1", LEASE, None).await?;
    let again = cmdbus_store::claim(&db, &[delivery(&waiting)], "worker-2", LEASE, None).await?;
    assert_eq!(claimed.runs.len(), 1);
    assert_eq!(claimed.refused?, vec![]);
    assert!(again.runs.is_empty());
    assert_eq!(
        again.refused?,
        vec![(waiting.id, cmdbus_store::Refusal::Duplicate)]
    );
    let held = claimed.runs[0].clone();
    let forged = cmdbus_store::Run {
        id: held.id,
        claim: Uuid::now_v7(),
    };

    assert!(heartbeat(&db, &[forged], LEASE).await?.is_empty());
    assert!(progress(&db, forged, 0.5, None).await?.is_none());
    assert_eq!(
        heartbeat(&db, &[run(&held)], LEASE).await?,
        vec![(run(&held).claim, false, true)]
    );
    let reported = progress(&db, run(&held), 0.5, None)
        .await?
        .expect("fenced by a live token");
    let done = cmdbus_store::finish(
        &db,
        &[cmdbus_store::Finish {
            id: held.id,
            claim: run(&held).claim,
            outcome: cmdbus_store::Outcome::Success(serde_json::json!("done")),
            lane: None,
        }],
        REDELIVER_AFTER,
    )
    .await?;

    assert_eq!(reported.progress, Some(0.5));
    assert_eq!(done.len(), 1);
    assert_eq!(
        every_column(&reload(&pool, held.id).await?),
        every_column(&done[0])
    );
    Ok(())
}
