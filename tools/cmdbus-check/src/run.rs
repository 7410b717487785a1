//! `cmdbus-check run`: prepares a fresh database and namespace, starts the processes, clients,
//! submitter, operator and fault injector, stops the faults after the duration, waits until
//! everything settled, runs every check, prints the counts and cleans up.

use anyhow::Context as _;
use cmdbus_auth::Scopes;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, sync::Arc, time::Duration};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

pub(crate) use crate::args::{FaultPlan, RunArgs};
use crate::{
    clients::ClientLog,
    procs::Cluster,
    promise::Promise,
    services::BrokerControl,
    shared::{APPLICATION_NAME, MAX_LEASE_LOSSES, PARTITIONS, Shared},
};

/// Runs the whole fault run; true when no check found a violation.
pub(crate) async fn main(args: RunArgs) -> anyhow::Result<bool> {
    let suffix = Uuid::now_v7().simple().to_string();
    let tag = format!("{}_{}", args.seed, &suffix[suffix.len() - 8..]);
    let database = format!("cmdbus_check_{tag}");
    let database_url = format!("{}/{database}", args.database_server);
    let namespace = format!("check{tag}");
    let log_dir = std::env::temp_dir().join(format!("cmdbus-check-{tag}"));
    std::fs::create_dir_all(&log_dir).context("cannot create the log directory")?;
    println!(
        "cmdbus-check: seed {} duration {}s database {database} namespace {namespace} logs {}",
        args.seed,
        args.duration,
        log_dir.display()
    );

    let pool = prepare_database(&database_url).await?;
    let (key, _) = cmdbus_auth::issue_key(&pool, "default", "check", Scopes::all(), false)
        .await
        .context("cannot create the run's API key")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse()?,
    );
    let vars = node_vars(&args, &database_url, &namespace);
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let shared = Arc::new(Shared::new(
        args.seed,
        database.clone(),
        namespace.clone(),
        pool,
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()?,
        key,
        Cluster::new(exe, vars, log_dir.clone()),
    ));
    let outcome = drive_and_check(&args, &shared).await;
    shared.cluster.stop_all(Duration::from_secs(20)).await;
    if args.keep {
        println!(
            "kept: database {database}, namespace {namespace}, logs {}",
            log_dir.display()
        );
        return outcome;
    }
    crate::settle::clean_up(
        &args.amqp_url,
        args.bus_queue_type(),
        &shared.pool,
        &database_url,
        &namespace,
    )
    .await;
    if matches!(outcome, Ok(true)) {
        let _ = std::fs::remove_dir_all(&log_dir);
    } else {
        println!("process logs kept in {}", log_dir.display());
    }
    outcome
}

async fn prepare_database(database_url: &str) -> anyhow::Result<PgPool> {
    let migrated = cmdbus_store::connect_and_migrate(&cmdbus_store::PoolConfig {
        url: database_url.to_owned(),
        max_connections: 2,
    })
    .await
    .context("cannot create the run database")?;
    sqlx::raw_sql(crate::handler::EFFECTS_TABLE)
        .execute(&migrated)
        .await
        .context("cannot create the effects table")?;
    sqlx::raw_sql(crate::archive::ARCHIVE)
        .execute(&migrated)
        .await
        .context("cannot create the archive of purged rows")?;
    migrated.close().await;
    let options = PgConnectOptions::from_str(database_url)?.application_name(APPLICATION_NAME);
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

fn node_vars(args: &RunArgs, database_url: &str, namespace: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("CMDBUS_DATABASE_URL", database_url.to_owned()),
        ("CMDBUS_AMQP_URL", args.amqp_url.clone()),
        ("CMDBUS_NAMESPACE", namespace.to_owned()),
        ("CMDBUS_LEASE_SECS", args.lease_secs.to_string()),
        ("CMDBUS_SWEEP_INTERVAL_MS", "200".to_owned()),
        ("CMDBUS_SHUTDOWN_GRACE_SECS", "5".to_owned()),
        ("CMDBUS_DB_MAX_CONNECTIONS", "6".to_owned()),
        // Enough that the run's handlers (mostly tens of milliseconds, one in fifty for
        // seconds) keep up with 300/s on two cores: the run is about faults, and a backlog it
        // made itself only drains past the settle time.
        ("CMDBUS_WORKER_CONCURRENCY", "24".to_owned()),
        ("CMDBUS_PARTITIONS", PARTITIONS.to_string()),
        (
            "CMDBUS_QUEUE_TYPE",
            match args.queue_type {
                cmdbus::QueueTypeArg::Classic => "classic",
                cmdbus::QueueTypeArg::Quorum => "quorum",
            }
            .to_owned(),
        ),
        ("CMDBUS_MAX_LEASE_LOSSES", MAX_LEASE_LOSSES.to_string()),
        ("CMDBUS_REDELIVER_AFTER_SECS", "10".to_owned()),
        ("CMDBUS_TAIL_INTERVAL_MS", "200".to_owned()),
        ("CMDBUS_LOG", "warn".to_owned()),
        ("CMDBUS_RETENTION", args.retention.clone()),
        // The run's clients share one key: per-caller limits would refuse the load they make.
        ("CMDBUS_RATE_LIMIT", "0".to_owned()),
        ("CMDBUS_MAX_LONG_POLLS_PER_KEY", "0".to_owned()),
        ("CMDBUS_MAX_SOCKETS_PER_TENANT", "0".to_owned()),
        ("CMDBUS_MAX_UNFINISHED_PER_TENANT", "0".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if args.unfenced {
        vars.push((crate::handler::UNFENCED_VAR.to_owned(), "1".to_owned()));
    }
    vars
}

/// Starts everything, runs for the duration, settles and checks; true when clean.
async fn drive_and_check(args: &RunArgs, shared: &Arc<Shared>) -> anyhow::Result<bool> {
    use crate::procs::NodeRole;
    for (role, count) in [
        (NodeRole::Api, args.apis),
        (NodeRole::Worker, args.workers),
        (NodeRole::Notifier, args.notifiers),
        (NodeRole::LaneWorker, args.lane_workers),
    ] {
        let least = usize::from(role != NodeRole::LaneWorker);
        for _ in 0..count.max(least) {
            shared.cluster.add(role).await?;
        }
    }

    // Clients subscribe before the first command, so each sees every command from its start.
    let calm = CancellationToken::new();
    let end = CancellationToken::new();
    let clients_done = TaskTracker::new();
    let mut logs = Vec::new();
    for index in 0..args.clients {
        let log = Arc::new(ClientLog::default());
        logs.push(log.clone());
        let (shared, calm, end) = (shared.clone(), calm.clone(), end.clone());
        let rng = fastrand::Rng::with_seed(args.seed.wrapping_mul(31).wrapping_add(index as u64));
        clients_done.spawn(async move {
            crate::clients::client(&shared, &log, rng, calm, end).await;
        });
    }
    for log in &logs {
        tokio::time::timeout(Duration::from_secs(30), log.subscribed.cancelled())
            .await
            .context("a client never subscribed")?;
    }

    let stop = CancellationToken::new();
    let faults = TaskTracker::new();
    let drivers = TaskTracker::new();
    {
        let (shared, stop) = (shared.clone(), stop.clone());
        let rng = fastrand::Rng::with_seed(args.seed);
        let (rate, in_flight) = (args.rate, args.in_flight);
        drivers.spawn(crate::submitter::submit(shared, rng, rate, in_flight, stop));
    }
    {
        let (shared, stop) = (shared.clone(), stop.clone());
        let rng = fastrand::Rng::with_seed(args.seed ^ 0x5eed_0001);
        drivers.spawn(async move { crate::operator::operate(&shared, rng, stop).await });
    }
    match args.faults {
        FaultPlan::Random => {
            drivers.spawn(crate::faults::inject(
                shared.clone(),
                fastrand::Rng::with_seed(args.seed ^ 0x5eed_0002),
                Duration::from_secs_f64(args.lease_secs),
                BrokerControl::of(&args.amqp_url, &args.cluster_script).await,
                !args.no_service_faults,
                stop.clone(),
                faults.clone(),
            ));
        }
        FaultPlan::RoleKills => {
            drivers.spawn(crate::faults::kill_each_role(
                shared.clone(),
                Duration::from_secs(args.duration),
                stop.clone(),
            ));
        }
        FaultPlan::NodeKills => {
            let (shared, script) = (shared.clone(), args.cluster_script.clone());
            let fault = args.node_fault;
            let duration = Duration::from_secs(args.duration);
            let stop = stop.clone();
            drivers.spawn(async move {
                if let Err(error) =
                    crate::cluster::kill_leaders(&shared, &script, fault, duration, stop).await
                {
                    shared.violation(format!("node kills: {error:#}"));
                }
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(args.duration)).await; // the run's length
    stop.cancel();
    drivers.close();
    drivers.wait().await;
    faults.close();
    faults.wait().await; // every stopped worker continued, every killed process respawned
    shared.cluster.refill().await?;

    let during = shared.take_violations();
    let mut promises = vec![Promise::new(
        "every submission accepted, every service fault undone",
        format!("problems={}", during.len()),
        during,
    )];
    promises.extend(crate::settle::settle_and_check(args, shared, &logs, &calm).await?);
    end.cancel();
    clients_done.close();
    clients_done.wait().await;
    let recoveries = crate::cluster::recoveries(shared, &shared.pool).await?;
    if !recoveries.is_empty() {
        let mut violations = Vec::new();
        for recovery in &recoveries {
            match (recovery.seconds, args.max_recovery_secs) {
                (None, _) => violations.push(format!(
                    "no command succeeded after broker node {} was killed",
                    recovery.kill.node
                )),
                (Some(seconds), Some(max)) if seconds > max => violations.push(format!(
                    "commands succeeded again {seconds:.1}s after broker node {} was killed \
                     (at most {max}s)",
                    recovery.kill.node
                )),
                _ => {}
            }
        }
        promises.push(Promise::new(
            "commands succeed again after a broker node kill",
            format!("node_kills={}", recoveries.len()),
            violations,
        ));
    }
    Ok(crate::settle::report(shared, &recoveries, &promises).await)
}

/// `cmdbus-check clean <tag>`: drops a kept run's database and namespace.
pub(crate) async fn clean(
    tag: &str,
    database_server: &str,
    amqp_url: &str,
    queue_type: cmdbus_bus::QueueType,
) -> anyhow::Result<bool> {
    let database_url = format!("{database_server}/cmdbus_check_{tag}");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy(&database_url)?;
    crate::settle::clean_up(
        amqp_url,
        queue_type,
        &pool,
        &database_url,
        &format!("check{tag}"),
    )
    .await;
    Ok(true)
}
