//! The checker's command type `check.work`: sleeps, fails when asked (for good, for its first
//! attempts, or until a replay), and otherwise records its effect in the run's `effects` table
//! inside a transaction fenced by the run's claim, so the checks can count effects per
//! generation and order them per key. Hostile forms, asked for in the payload, do what careless
//! real handlers do: `block_ms` blocks its runtime thread (`std::thread::sleep`), `spin_ms`
//! keeps a CPU busy without yielding, `panic` panics, and `hold_ms` keeps the effect's
//! transaction (which holds the claim with `hold_claim`) open that long before it commits.

use cmdbus_domain::TypeInfo;
use cmdbus_worker::{Context, HandlerError, Registry};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

/// The checker's command type.
pub(crate) const WORK: &str = "check.work";

/// Attempts a `check.work` command gets unless the submitter says otherwise.
const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// One row per successful run of a handler (an effect). No unique key on purpose: a second
/// effect of one generation is a violation the checks must be able to see.
pub(crate) const EFFECTS_TABLE: &str = "create table if not exists effects (
    command_id   uuid not null,
    generation   integer not null,
    attempt      integer not null,
    ordering_key text,
    seq          bigint,
    at           timestamptz not null default clock_timestamp()
);
create index if not exists effects_command on effects (command_id, generation)";

/// What a `check.work` payload asks of its handler.
#[derive(Debug, Default)]
struct Work {
    key: Option<String>,
    seq: Option<i64>,
    ms: u64,
    fail_times: i64,
    permanent: bool,
    /// Fails for good in every generation before this one: a bug fixed before the replay.
    fail_before_generation: i64,
    ignore_cancel: bool,
    /// Blocks the thread it runs on this long (no `.await`), before the work.
    block_ms: u64,
    /// Spins the CPU this long without yielding, before the work.
    spin_ms: u64,
    /// Panics instead of working.
    panic: bool,
    /// Keeps the effect's transaction, claim held, open this long before committing.
    hold_ms: u64,
}

impl Work {
    fn parse(payload: &Value) -> Result<Self, HandlerError> {
        let invalid = |field: &str| {
            HandlerError::permanent("invalid_payload", format!("`{field}` has the wrong type"))
        };
        let flag = |field: &str| match payload.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(value) => value.as_bool().ok_or_else(|| invalid(field)),
        };
        let millis = |field: &str| match payload.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(value) => value.as_u64().ok_or_else(|| invalid(field)),
        };
        Ok(Self {
            key: match payload.get("key") {
                None | Some(Value::Null) => None,
                Some(value) => Some(value.as_str().ok_or_else(|| invalid("key"))?.to_owned()),
            },
            seq: match payload.get("seq") {
                None | Some(Value::Null) => None,
                Some(value) => Some(value.as_i64().ok_or_else(|| invalid("seq"))?),
            },
            ms: millis("ms")?,
            fail_times: match payload.get("fail_times") {
                None | Some(Value::Null) => 0,
                Some(value) => value.as_i64().ok_or_else(|| invalid("fail_times"))?,
            },
            permanent: flag("permanent")?,
            fail_before_generation: match payload.get("fail_before_generation") {
                None | Some(Value::Null) => 0,
                Some(value) => value
                    .as_i64()
                    .ok_or_else(|| invalid("fail_before_generation"))?,
            },
            ignore_cancel: flag("ignore_cancel")?,
            block_ms: millis("block_ms")?,
            spin_ms: millis("spin_ms")?,
            panic: flag("panic")?,
            hold_ms: millis("hold_ms")?,
        })
    }
}

/// Set (to anything) in a node's environment to record effects without holding the claim: a
/// deliberately broken handler, to see the fencing checks fail.
pub(crate) const UNFENCED_VAR: &str = "CMDBUS_CHECK_UNFENCED";

/// Registers `check.work`, whose effects go to `pool` (the run's database).
pub(crate) fn register(registry: &mut Registry, pool: PgPool) {
    let fenced = std::env::var_os(UNFENCED_VAR).is_none();
    let info = TypeInfo {
        name: WORK.to_owned(),
        description: "Fault-run work: sleeps `ms`, fails when asked, records its effect once."
            .to_owned(),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        example: Some(json!({"ms": 100, "key": "k1", "seq": 1})),
        payload_schema: None,
        result_schema: None,
    };
    registry.register(info, move |ctx: Context, payload: Value| {
        let pool = pool.clone();
        async move { work(pool, fenced, ctx, payload).await }
    });
}

async fn work(
    pool: PgPool,
    fenced: bool,
    ctx: Context,
    payload: Value,
) -> Result<Value, HandlerError> {
    let work = Work::parse(&payload)?;
    hostile(&work);
    let nap = tokio::time::sleep(Duration::from_millis(work.ms));
    if work.ignore_cancel {
        // Like most real handlers: keeps going whatever the token says.
        nap.await;
    } else {
        tokio::select! {
            _ = ctx.cancellation().cancelled() => {
                return Err(HandlerError::retryable("cancelled", "stopped when asked"));
            }
            _ = nap => {}
        }
    }
    if work.permanent {
        return Err(HandlerError::permanent("check_permanent", "fails for good"));
    }
    if i64::from(ctx.generation()) < work.fail_before_generation {
        return Err(HandlerError::permanent(
            "check_fixed_later",
            format!("fails until generation {}", work.fail_before_generation),
        ));
    }
    if i64::from(ctx.attempt()) <= work.fail_times {
        return Err(HandlerError::retryable(
            "check_retryable",
            format!(
                "attempt {} of {} planned failures",
                ctx.attempt(),
                work.fail_times
            ),
        ));
    }
    record_effect(&pool, fenced, &ctx, &work)
        .await
        .map_err(|error| HandlerError::retryable("effect_not_recorded", error.to_string()))?
        .then_some(json!({"attempt": ctx.attempt()}))
        .ok_or_else(|| HandlerError::retryable("fenced", "this run no longer holds its claim"))
}

/// What a hostile payload asks for: block the thread, spin the CPU, or panic. Deliberately
/// synchronous: this is the handler that takes a runtime thread away from everything else.
fn hostile(work: &Work) {
    if work.block_ms > 0 {
        std::thread::sleep(Duration::from_millis(work.block_ms)); // the fault: a blocking call
    }
    if work.spin_ms > 0 {
        let until = std::time::Instant::now() + Duration::from_millis(work.spin_ms);
        let mut spins: u64 = 0;
        while std::time::Instant::now() < until {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
    if work.panic {
        panic!("check.work was asked to panic");
    }
}

/// Records the effect once per (command, generation), only while this run holds its claim.
/// Returns false when the run was fenced out (nothing written).
async fn record_effect(
    pool: &PgPool,
    fenced: bool,
    ctx: &Context,
    work: &Work,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    if fenced && !ctx.hold_claim(&mut tx).await? {
        return Ok(false);
    }
    let generation = ctx.generation();
    let done: bool = sqlx::query_scalar(
        "select exists (select 1 from effects where command_id = $1 and generation = $2)",
    )
    .bind(ctx.id())
    .bind(generation)
    .fetch_one(&mut *tx)
    .await?;
    if !done {
        sqlx::query(
            "insert into effects (command_id, generation, attempt, ordering_key, seq)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(ctx.id())
        .bind(generation)
        .bind(ctx.attempt())
        .bind(&work.key)
        .bind(work.seq)
        .execute(&mut *tx)
        .await?;
    }
    if work.hold_ms > 0 {
        // The claim's row stays locked by this transaction meanwhile: no other run's lease and
        // no sweep may wait for it.
        tokio::time::sleep(Duration::from_millis(work.hold_ms)).await;
    }
    tx.commit().await?;
    Ok(true)
}
