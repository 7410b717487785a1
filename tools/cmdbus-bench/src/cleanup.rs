//! `cmdbus-bench cleanup`: deletes the broker queues and exchanges of the run's namespace once
//! its server has stopped, so benchmark runs leave nothing on a shared broker. The command types
//! registered in the run's database name the per-type queues.

use anyhow::Context as _;
use cmdbus_bus::{Broker, BusConfig, QueueType};
use cmdbus_domain::Names;
use std::time::Duration;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::args::CleanupArgs;

pub(crate) async fn run(args: CleanupArgs) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&args.database_url)
        .await
        .context("cannot reach the run's database")?;
    let kinds: Vec<String> = cmdbus_store::list_types(&pool)
        .await?
        .into_iter()
        .map(|kind| kind.name)
        .collect();
    pool.close().await;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let broker = Broker::start(
        BusConfig {
            url: args.amqp_url.clone(),
            names: Names::new(args.namespace.clone()),
            connection_name: "cmdbus-bench cleanup".to_owned(),
            partitions: args.partitions,
            // Deleting does not look at a queue's type.
            queue_type: QueueType::Classic,
        },
        shutdown.clone(),
        &tracker,
    )?;
    let deleted = if broker.wait_connected(Duration::from_secs(30)).await {
        broker
            .delete_topology(&kinds)
            .await
            .context("cannot delete the namespace's queues and exchanges")
    } else {
        Err(anyhow::anyhow!("cannot connect to RabbitMQ"))
    };
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    deleted?;
    println!(
        "deleted the queues and exchanges of namespace `{}` ({} types)",
        args.namespace,
        kinds.len()
    );
    Ok(())
}
