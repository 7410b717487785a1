//! PostgreSQL's limit for the least a command costs the status database: insert the row `new`,
//! move it to `running` (a claim), then to `success` (a finish) — each statement its own commit,
//! on cmdbus's own `commands` table with all its indexes and constraints, in a scratch database
//! migrated with cmdbus's migrations. Measured one row per statement and in batches, with one
//! client and with many.

use anyhow::Context as _;
use sqlx::{
    AssertSqlSafe, ConnectOptions as _, Connection as _, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{
    str::FromStr as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::cpu::{Accounting, Usage};

/// What one configuration achieved.
#[derive(Debug)]
pub(crate) struct PgLimit {
    pub(crate) batch: usize,
    pub(crate) clients: usize,
    /// Commands inserted and finished per second.
    pub(crate) per_sec: f64,
    pub(crate) usage: Usage,
    pub(crate) commands: u64,
}

/// The scratch database: created afresh and migrated, dropped when done.
#[derive(Debug)]
pub(crate) struct Scratch {
    options: PgConnectOptions,
    name: String,
    pub(crate) pool: PgPool,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Scratch {
    pub(crate) async fn create(url: &str, connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("invalid --database-url")?;
        let name = options
            .get_database()
            .context("--database-url names no database")?
            .to_owned();
        let mut admin = options.clone().database("postgres").connect().await?;
        let name_sql = quoted(&name);
        sqlx::query(AssertSqlSafe(format!(
            "drop database if exists {name_sql} with (force)"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::query(AssertSqlSafe(format!("create database {name_sql}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create the scratch database {name}"))?;
        admin.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(options.clone())
            .await?;
        cmdbus_store::MIGRATOR
            .run(&pool)
            .await
            .context("cannot migrate the scratch database")?;
        Ok(Self {
            options,
            name,
            pool,
        })
    }

    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut admin = self.options.database("postgres").connect().await?;
        sqlx::query(AssertSqlSafe(format!(
            "drop database if exists {} with (force)",
            quoted(&self.name)
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}

/// Runs `clients` connections, each inserting and finishing `batch` commands per round, for
/// `duration`.
pub(crate) async fn measure(
    scratch: &Scratch,
    batch: usize,
    clients: usize,
    duration: Duration,
    accounting: &Accounting,
) -> anyhow::Result<PgLimit> {
    sqlx::query("truncate commands cascade")
        .execute(&scratch.pool)
        .await?;
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(scratch.pool.acquire().await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let before = accounting.sample();
    let end = Instant::now() + duration;
    let mut workers = JoinSet::new();
    for mut connection in connections {
        let done = Arc::clone(&done);
        workers.spawn(async move {
            while Instant::now() < end {
                round(&mut connection, batch).await?;
                done.fetch_add(batch as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    let mut outcome = Ok(());
    while let Some(joined) = workers.join_next().await {
        if let Ok(Err(error)) = joined {
            outcome = Err(error);
        }
    }
    let usage = accounting.usage(&before, &accounting.sample());
    outcome?;
    let commands = done.load(Ordering::Relaxed);
    Ok(PgLimit {
        batch,
        clients,
        per_sec: commands as f64 / usage.window.as_secs_f64().max(1e-9),
        usage,
        commands,
    })
}

/// Inserts `batch` commands, claims them, finishes them: three statements, three commits.
async fn round(connection: &mut PgConnection, batch: usize) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = (0..batch.max(1)).map(|_| Uuid::now_v7()).collect();
    // As cmdbus's submit writes a row (`cmdbus_store::insert`).
    sqlx::query(
        "insert into commands
             (id, tenant, type, payload, priority, ordering_key, idempotency_key, max_attempts,
              subject)
         select d.id, 'default', 'demo.noop', '{}'::jsonb, 0, null, null, 1, null
           from unnest($1::uuid[]) as d(id)",
    )
    .bind(&ids)
    .execute(&mut *connection)
    .await?;
    // As a worker's claim changes it (`cmdbus_store::claim`, without the attempt history).
    let claimed = sqlx::query(
        "update commands
            set status = 'running', attempt = attempt + 1, worker = 'bench',
                claim = gen_random_uuid(), lease_until = now() + interval '30 seconds',
                started_at = now(), queued_at = coalesce(queued_at, now()),
                version = nextval('command_version'), changed_xid = pg_current_xact_id()
          where id = any($1) and status in ('new', 'queue')",
    )
    .bind(&ids)
    .execute(&mut *connection)
    .await?;
    // As a worker's finish ends it (`cmdbus_store::finish`).
    let finished = sqlx::query(
        "update commands
            set status = 'success', result = 'null'::jsonb, progress = 1, finished_at = now(),
                claim = null, lease_until = null,
                version = nextval('command_version'), changed_xid = pg_current_xact_id()
          where id = any($1) and status = 'running'",
    )
    .bind(&ids)
    .execute(&mut *connection)
    .await?;
    anyhow::ensure!(
        claimed.rows_affected() == ids.len() as u64 && finished.rows_affected() == ids.len() as u64,
        "the updates did not change every row"
    );
    Ok(())
}
