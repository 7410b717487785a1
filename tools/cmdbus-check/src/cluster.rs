//! Broker node faults of a cluster run (`--faults node-kills`), driven through the cluster
//! script (`scripts/rabbit-cluster.sh`): SIGKILL of the node that leads the main command queue,
//! that node started again, then SIGKILL of the node leading the queue by then, also started
//! again before the run settles. The time from each kill until commands succeed again is read
//! from PostgreSQL at the end.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use cmdbus_domain::{Lane, Names};
use sqlx::PgPool;
use std::{path::Path, process::Stdio, time::Duration};
use tokio::{process::Command, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    args::NodeFault,
    handler::WORK,
    shared::{NodeKill, Shared},
};

/// How long after a kill commands succeeded again.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    pub(crate) kill: NodeKill,
    /// Seconds from the kill until the first success of a command submitted after it that went
    /// through the main command queue (no ordering key): the api's publish, the queue's new
    /// leader, a worker's consumer and its finish all work again. `None`: none succeeded.
    pub(crate) seconds: Option<f64>,
    /// The longest any command without an ordering key (which may wait for its key's earlier
    /// commands) submitted within 10 s after the kill waited from its submission until a worker
    /// started its first run: what a process still reconnecting, a publish the
    /// relay had to make again, or a queue without a leader cost the unluckiest command.
    pub(crate) slowest_start: Option<f64>,
}

/// The window after a kill whose commands' waits `slowest_start` looks at.
const WINDOW_SECS: f64 = 10.0;

/// Kills the main command queue's leader at 30 % of `duration`, starts it again at 50 %, kills
/// the leader of then at 70 %, and starts that one again at 90 % (or when the run stops early).
pub(crate) async fn kill_leaders(
    shared: &Shared,
    script: &Path,
    fault: NodeFault,
    duration: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (break_it, mend_it) = match fault {
        NodeFault::Kill => ("kill", "restart"),
        NodeFault::Freeze => ("freeze", "thaw"),
    };
    let start = Instant::now();
    let queue = Names::new(shared.namespace.clone()).command_queue(WORK, Lane::Main);
    let at = |fraction: f64| start + duration.mul_f64(fraction);
    let mut down: Option<String> = None;
    let outcome = async {
        for (kill_at, restart_at) in [(0.3, 0.5), (0.7, 0.9)] {
            if !wait_until(at(kill_at), &stop).await {
                return Ok(());
            }
            let node = leader(script, &queue).await?;
            let kill = NodeKill {
                node: node.clone(),
                at: Utc::now(),
            };
            run_script(script, &[break_it, &node]).await?;
            down = Some(node.clone());
            println!(
                "{break_it}: broker node {node} (leader of {queue}) at +{:.1}s",
                start.elapsed().as_secs_f64()
            );
            lock(shared).push(kill);
            wait_until(at(restart_at), &stop).await;
            run_script(script, &[mend_it, &node]).await?;
            down = None;
            println!(
                "broker node {node} is back at +{:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    // The run settles and is checked on a whole cluster, whatever happened above.
    if let Some(node) = down {
        run_script(script, &[mend_it, &node]).await?;
    }
    outcome
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Vec<NodeKill>> {
    shared
        .counts
        .node_kills
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps until `deadline`; false when the run stopped first.
async fn wait_until(deadline: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep_until(deadline) => true,
    }
}

/// The node (1, 2 or 3) leading `queue`.
async fn leader(script: &Path, queue: &str) -> anyhow::Result<String> {
    let node = run_script(script, &["leader", queue]).await?;
    let node = node.trim();
    if node.is_empty() {
        bail!("the cluster script names no leader of {queue}");
    }
    Ok(node.to_owned())
}

/// Runs the cluster script with `args`; its stdout.
async fn run_script(script: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new(script)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{} {args:?} took too long", script.display()))?
    .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} {args:?} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The recovery of every node kill of the run.
pub(crate) async fn recoveries(shared: &Shared, pool: &PgPool) -> anyhow::Result<Vec<Recovery>> {
    let kills = lock(shared).clone();
    let mut recoveries = Vec::with_capacity(kills.len());
    for kill in kills {
        let first: Option<DateTime<Utc>> = sqlx::query_scalar(
            "select min(finished_at) from all_commands
             where status = 'success' and ordering_key is null and created_at > $1",
        )
        .bind(kill.at)
        .fetch_one(pool)
        .await?;
        let seconds = first.map(|first| (first - kill.at).as_seconds_f64());
        let slowest_start: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from max(a.started_at - c.created_at))::float8
             from all_commands c join all_attempts a
               on a.command_id = c.id and a.generation = 0 and a.attempt = 1
             where c.ordering_key is null
               and c.created_at > $1 and c.created_at < $1 + make_interval(secs => $2)",
        )
        .bind(kill.at)
        .bind(WINDOW_SECS)
        .fetch_one(pool)
        .await?;
        recoveries.push(Recovery {
            kill,
            seconds,
            slowest_start,
        });
    }
    Ok(recoveries)
}
