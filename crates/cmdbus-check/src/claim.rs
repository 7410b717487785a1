//! Shim until the claim-token API lands in the worker library: whether this run still holds
//! its command, and its generation. Replaced by `Context::hold_claim` and
//! `Context::generation` once they exist.

use cmdbus_worker::Context;
use sqlx::PgConnection;

/// Locks the command row `FOR SHARE` if this attempt still runs it with a live lease.
pub(crate) async fn hold(ctx: &Context, conn: &mut PgConnection) -> anyhow::Result<bool> {
    let held: Option<i32> = sqlx::query_scalar(
        "select generation from commands
         where id = $1 and status = 'running' and attempt = $2 and lease_until > now()
         for share",
    )
    .bind(ctx.id())
    .bind(ctx.attempt())
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// The generation this run belongs to (read under the lock `hold` took).
pub(crate) async fn generation(ctx: &Context, conn: &mut PgConnection) -> anyhow::Result<i32> {
    Ok(
        sqlx::query_scalar("select generation from commands where id = $1")
            .bind(ctx.id())
            .fetch_one(conn)
            .await?,
    )
}
