//! The handle every role reaches PostgreSQL through: a connection pool that, behind PgBouncer in
//! transaction mode, runs each statement given to it inside a transaction of its own.
//!
//! Why: sqlx sends a statement in two round trips — parse it (ending in `Sync`), then bind and
//! run it. PgBouncer in transaction mode hands the server connection back to its pool at every
//! `Sync` outside a transaction, so the second half can reach another server: one where the
//! statement does not exist, or — for the unnamed statement — where another client's statement
//! sits under the same name and runs with these parameters. Inside a transaction the server stays
//! the same from `BEGIN` to `COMMIT`. Named statements that outlive their transaction are cleared
//! by PgBouncer's `server_reset_query = DEALLOCATE ALL` with `server_reset_query_always = 1`, and
//! the statement cache is off, so no statement is ever looked up again on another server.

use futures_util::{StreamExt as _, TryStreamExt as _, future::BoxFuture, stream::BoxStream};
use sqlx::{
    Describe, Either, Execute, Executor, PgPool, Postgres, SqlStr,
    postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo},
};
use std::ops::Deref;

/// A PostgreSQL pool, reached directly or through PgBouncer in transaction mode. Cheap to
/// clone; derefs to the pool for transactions (`begin`), `acquire` and `close`.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    /// Where the group-committed statements of the hot path run, when it is not `pool`: see
    /// [`Db::for_batches`].
    batches: Option<PgPool>,
    /// Statements given to the handle itself run in a transaction of their own.
    pgbouncer: bool,
}

impl Db {
    /// A pool that talks to PostgreSQL itself (or to a pooler that keeps each client on one
    /// server, or tracks prepared statements, like PgBouncer 1.21+ with `max_prepared_statements`).
    pub fn direct(pool: PgPool) -> Self {
        Self {
            pool,
            batches: None,
            pgbouncer: false,
        }
    }

    /// A direct pool, with a second one (connected with `plan_cache_mode=force_generic_plan`)
    /// for the group-committed statements: see [`Db::for_batches`].
    pub fn direct_with_batches(pool: PgPool, batches: PgPool) -> Self {
        Self {
            pool,
            batches: Some(batches),
            pgbouncer: false,
        }
    }

    /// A pool whose connections go through PgBouncer in transaction mode without prepared
    /// statement tracking (connected with the statement cache off: see [`crate::connect`]).
    pub fn through_pgbouncer(pool: PgPool) -> Self {
        Self {
            pool,
            batches: None,
            pgbouncer: true,
        }
    }

    /// The handle the group-committed statements of the hot path run on (the api's inserts and
    /// `queue` marks, the worker's claims, finishes and hand-ons). Those statements find their
    /// rows by id, and the best plan for them never depends on the values bound, yet PostgreSQL
    /// plans each run afresh (a batch's array of ids makes every custom plan look cheaper than
    /// the generic one), and planning statements over a table with many partial indexes cost
    /// as much as running them: half of PostgreSQL's CPU per command at low rates. Their own
    /// connections keep one generic plan per statement. The rest of cmdbus (listings with
    /// optional filters, bulk actions paging by id) keeps custom plans, which those need.
    pub fn for_batches(&self) -> Db {
        match &self.batches {
            Some(batches) => Db::direct(batches.clone()),
            None => self.clone(),
        }
    }

    /// Closes the pool, and the batches' pool if there is one.
    pub async fn close(&self) {
        if let Some(batches) = &self.batches {
            batches.close().await;
        }
        self.pool.close().await;
    }

    /// The pool itself.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether statements go through PgBouncer in transaction mode.
    pub fn is_pgbouncer(&self) -> bool {
        self.pgbouncer
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Self::direct(pool)
    }
}

impl Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pgbouncer {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool.clone();
        // Collected inside the transaction: cmdbus's statements return bounded result sets.
        futures_util::stream::once(async move {
            let mut tx = pool.begin().await?;
            let results: Vec<_> = tx.fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures_util::stream::iter(results.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pgbouncer {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = tx.fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    // Part of the trait while sqlx's `offline` feature is on, which its macros turn on.
    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}
