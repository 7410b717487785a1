//! The per-key promises: per ordering key, the first runs of its commands come in submission
//! order (read from the effects), and the key never has two commands running at once (read from
//! the attempt history, purged attempts included).

use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

use crate::promise::{Promise, SHOWN, count};

/// A key never has two commands running: no run (attempt) of one command of a key overlaps a
/// run of another command of that key. A run lasts from its claim (`started_at`) to its end
/// (`finished_at`: its finish, or the moment the reaper took back a lost lease); a run still
/// open lasts until now. The store dates both ends by the clock as the row is written (not by
/// the transaction's start), after the claim's snapshot saw the previous run end: any overlap,
/// however short, is two runs.
pub(crate) async fn one_running_per_key(pool: &PgPool) -> anyhow::Result<Promise> {
    let runs = count(
        pool,
        "select count(*) from all_attempts a join all_commands c on c.id = a.command_id
         where c.ordering_key is not null",
    )
    .await?;
    let overlaps: Vec<(String, f64)> = sqlx::query_as(
        "with runs as (
             select c.tenant, c.ordering_key, a.command_id, a.generation, a.attempt,
                    a.started_at, coalesce(a.finished_at, now()) as finished_at, a.outcome
             from all_attempts a join all_commands c on c.id = a.command_id
             where c.ordering_key is not null
         )
         select 'key ' || x.ordering_key || ': ' || x.command_id || ' (generation '
                    || x.generation || ' attempt ' || x.attempt || ', '
                    || coalesce(x.outcome, 'open') || ') ran ' || x.started_at || ' .. '
                    || x.finished_at || ' beside ' || y.command_id || ' (generation '
                    || y.generation || ' attempt ' || y.attempt || ', '
                    || coalesce(y.outcome, 'open') || ') ran ' || y.started_at || ' .. '
                    || y.finished_at,
                extract(epoch from least(x.finished_at, y.finished_at)
                                   - greatest(x.started_at, y.started_at))::float8
         from runs x join runs y
           on x.tenant = y.tenant and x.ordering_key = y.ordering_key
          and x.command_id < y.command_id
          and x.started_at < y.finished_at and y.started_at < x.finished_at
         order by 2 desc",
    )
    .fetch_all(pool)
    .await?;
    let mut violations: Vec<String> = overlaps
        .iter()
        .take(SHOWN)
        .map(|(what, seconds)| format!("two running on one key for {seconds:.3}s: {what}"))
        .collect();
    if overlaps.len() > SHOWN {
        violations.push(format!(
            "two running on one key: ... {} overlaps in all",
            overlaps.len()
        ));
    }
    Ok(Promise::new(
        "never two running per key",
        format!(
            "keyed_runs={runs} overlaps={} longest={:.3}s",
            overlaps.len(),
            overlaps.first().map_or(0.0, |(_, seconds)| *seconds),
        ),
        violations,
    ))
}

/// Per ordering key, in submission order (`seq`): each command's first run starts after the
/// first run of every earlier command of the key, and its first effect of generation 0 comes
/// after theirs. Effects of a run that follows a failed run of the same generation (an
/// exception-lane re-run of a parked command: its successors rightly went on when it failed)
/// and of later generations (replays) are not ordered by this promise; they are by "never two
/// running per key". Only accepted commands count: a submission the submitter gave up on may
/// still be inserted by an api that was slow to answer, after the key's next command.
pub(crate) async fn order_per_key(pool: &PgPool, accepted: &[Uuid]) -> anyhow::Result<Vec<String>> {
    let starts: Vec<(String, i64, Uuid)> = sqlx::query_as(
        "select c.ordering_key, (c.payload ->> 'seq')::bigint, c.id
         from all_commands c join all_attempts a on a.command_id = c.id and a.generation = 0
         where c.ordering_key is not null and c.payload ? 'seq' and c.id = any($1)
         group by c.id, c.ordering_key, c.payload
         order by c.ordering_key, min(a.started_at), c.id",
    )
    .bind(accepted)
    .fetch_all(pool)
    .await?;
    let effects: Vec<(String, i64, Uuid)> = sqlx::query_as(
        "select ordering_key, seq, command_id from (
             select distinct on (e.command_id) e.ordering_key, e.seq, e.command_id, e.at
             from effects e
             where e.ordering_key is not null and e.generation = 0 and e.command_id = any($1)
               and not exists (select 1 from all_attempts f
                               where f.command_id = e.command_id and f.generation = 0
                                 and f.attempt < e.attempt and f.outcome = 'fail')
             order by e.command_id, e.at
         ) first order by ordering_key, at",
    )
    .bind(accepted)
    .fetch_all(pool)
    .await?;
    let mut violations = in_seq_order(&starts, "first run started");
    violations.extend(in_seq_order(&effects, "first effect recorded"));
    Ok(violations)
}

/// Where `rows` (key, seq, command, in time order per key) go back in `seq`.
fn in_seq_order(rows: &[(String, i64, Uuid)], what: &str) -> Vec<String> {
    let mut last: HashMap<&str, (i64, Uuid)> = HashMap::new();
    let mut violations = Vec::new();
    for (key, seq, id) in rows {
        if let Some((before, before_id)) = last.get(key.as_str())
            && *before >= *seq
        {
            violations.push(format!(
                "out of order on key {key}: {what} for seq {seq} ({id}) after seq {before} \
                 ({before_id})"
            ));
        }
        last.insert(key, (*seq, *id));
    }
    violations
}

/// The per-key checks against made-up histories in a scratch database of their own (migrated,
/// with the run's archive), so each check is seen to fail on the history it exists to catch.
#[cfg(test)]
mod tests {
    use sqlx::PgPool;
    use uuid::Uuid;

    /// A migrated scratch database with the archive; dropped by `drop_scratch`.
    async fn scratch() -> (PgPool, String) {
        let url = format!(
            "{}/cmdbus_check_keys_{}",
            crate::shared::DATABASE_SERVER,
            Uuid::now_v7().simple()
        );
        let pool = cmdbus_store::connect_and_migrate(&cmdbus_store::PoolConfig {
            url: url.clone(),
            max_connections: 2,
        })
        .await
        .expect("scratch database");
        sqlx::raw_sql(crate::handler::EFFECTS_TABLE)
            .execute(&pool)
            .await
            .expect("effects table");
        sqlx::raw_sql(crate::archive::ARCHIVE)
            .execute(&pool)
            .await
            .expect("archive");
        (pool, url)
    }

    async fn drop_scratch(pool: PgPool, url: &str) {
        pool.close().await;
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
        cmdbus_store::drop_database(&options)
            .await
            .expect("drop scratch database");
    }

    /// A finished command of key `k1` with sequence `seq` and one attempt from `start` to `end`
    /// (seconds after a fixed moment).
    async fn command(pool: &PgPool, seq: i64, start: f64, end: f64) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into commands (id, tenant, type, payload, status, ordering_key, attempt,
                                   finished_at)
             values ($1, 'default', 'check.work', jsonb_build_object('key', 'k1', 'seq', $2),
                     'success', 'k1', 1, now())",
        )
        .bind(id)
        .bind(seq)
        .execute(pool)
        .await
        .expect("command");
        sqlx::query(
            "insert into command_attempts (command_id, generation, attempt, worker, started_at,
                                           finished_at, outcome)
             values ($1, 0, 1, 'w', '2026-01-01'::timestamptz + make_interval(secs => $2),
                     '2026-01-01'::timestamptz + make_interval(secs => $3), 'success')",
        )
        .bind(id)
        .bind(start)
        .bind(end)
        .execute(pool)
        .await
        .expect("attempt");
        id
    }

    #[tokio::test]
    async fn two_commands_of_a_key_running_at_once_is_a_violation() {
        let (pool, url) = scratch().await;
        // Back to back (one ends as the next starts): one at a time.
        command(&pool, 1, 0.0, 1.0).await;
        command(&pool, 2, 1.0, 2.0).await;
        let promise = super::one_running_per_key(&pool).await.expect("check");
        assert!(!promise.violated(), "{promise:?}");
        // A third that starts half-way through the second: two running for 0.5 s.
        command(&pool, 3, 1.5, 3.0).await;
        let promise = super::one_running_per_key(&pool).await.expect("check");
        assert_eq!(promise.violations.len(), 1, "{promise:?}");
        assert!(promise.violations[0].contains("0.500s"), "{promise:?}");
        // Purged rows count too.
        sqlx::query("delete from commands")
            .execute(&pool)
            .await
            .expect("purge");
        let promise = super::one_running_per_key(&pool).await.expect("check");
        assert_eq!(promise.violations.len(), 1, "{promise:?}");
        drop_scratch(pool, &url).await;
    }

    #[tokio::test]
    async fn a_later_command_of_a_key_starting_first_is_out_of_order() {
        let (pool, url) = scratch().await;
        let first = command(&pool, 1, 0.0, 1.0).await;
        let third = command(&pool, 3, 3.0, 4.0).await;
        let second = command(&pool, 2, 5.0, 6.0).await;
        let violations = super::order_per_key(&pool, &[first, second, third])
            .await
            .expect("check");
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("seq 2"), "{violations:?}");
        // A command the submitter never saw accepted is not ordered.
        let violations = super::order_per_key(&pool, &[first, third])
            .await
            .expect("check");
        assert!(violations.is_empty(), "{violations:?}");
        drop_scratch(pool, &url).await;
    }
}
