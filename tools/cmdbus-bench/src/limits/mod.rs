//! `cmdbus-bench limits`: what RabbitMQ and PostgreSQL on this machine can do for the work cmdbus
//! asks of them per command, measured directly (no cmdbus in the path), and cmdbus's own
//! end-to-end figure as a share of each.

mod broker;
mod postgres;

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr as _;

use crate::{
    args::LimitsArgs,
    cpu::{Accounting, Ports},
    report::Recorded,
};
use broker::BrokerLimit;
use postgres::{PgLimit, Scratch};

pub(crate) async fn run(args: LimitsArgs) -> anyhow::Result<()> {
    let options =
        PgConnectOptions::from_str(&args.database_url).context("invalid --database-url")?;
    // No cmdbus in the path: any cmdbus process running meanwhile is someone else's.
    let accounting = Accounting::new(Some(&[]), ports(&args, &options)?, options.get_database());
    let wants = |name: &str| args.only.iter().any(|only| only == name);
    let seconds = args.duration.as_secs_f64();

    let mut broker_limits = Vec::new();
    if wants("broker") {
        println!(
            "limits: RabbitMQ — persistent publish with confirms + acked consume at once, one \
             durable priority queue, {seconds:.1} s each"
        );
        broker_limits =
            broker::measure(&args.amqp_url, &args.windows, args.duration, &accounting).await?;
        for limit in &broker_limits {
            println!(
                "  window {:>4}: {:>8.0} msgs/s published+confirmed, {:>8.0} msgs/s consumed+acked\n    {}",
                limit.window,
                limit.published,
                limit.consumed,
                limit
                    .usage
                    .line((limit.sustained() * seconds) as u64, "message")
            );
        }
    }

    let mut pg_limits = Vec::new();
    if wants("postgres") {
        println!(
            "limits: PostgreSQL — insert + 2 updates per command (new → running → success, a \
             commit each) on cmdbus's `commands` table, {seconds:.1} s each"
        );
        let most_clients = args.clients.iter().copied().max().unwrap_or(1);
        let scratch = Scratch::create(
            &args.database_url,
            u32::try_from(most_clients + 1).unwrap_or(u32::MAX),
        )
        .await?;
        let mut outcome = Ok(());
        'configs: for batch in [1, args.batch.max(1)] {
            for &clients in &args.clients {
                match postgres::measure(&scratch, batch, clients.max(1), args.duration, &accounting)
                    .await
                {
                    Ok(limit) => {
                        println!(
                            "  {:<34} {:>8.0} commands/s\n    {}",
                            format!("{}, {}", rows(limit.batch), connections(limit.clients)),
                            limit.per_sec,
                            limit.usage.line(limit.commands, "command")
                        );
                        pg_limits.push(limit);
                    }
                    Err(error) => {
                        outcome = Err(error);
                        break 'configs;
                    }
                }
            }
        }
        if let Err(error) = scratch.drop().await {
            eprintln!("cannot drop the scratch database: {error:#}");
        }
        outcome?;
    }

    if let Some(path) = &args.against {
        let recorded = Recorded::load(path)?;
        print!("{}", compare(&recorded, &broker_limits, &pg_limits));
    }
    println!();
    Ok(())
}

/// The ports of the services measured, from their URLs.
fn ports(args: &LimitsArgs, database: &PgConnectOptions) -> anyhow::Result<Ports> {
    let postgres = database.get_port();
    let amqp = lapin::uri::AMQPUri::from_str(&args.amqp_url)
        .map_err(|error| anyhow::anyhow!("invalid --amqp-url: {error}"))?
        .authority
        .port;
    Ok(Ports { postgres, amqp })
}

/// cmdbus's end-to-end figure as a share of each limit.
fn compare(recorded: &Recorded, broker: &[BrokerLimit], pg: &[PgLimit]) -> String {
    let share = |limit: f64| recorded.per_sec / limit.max(1e-9) * 100.0;
    let mut out = format!(
        "cmdbus {:.0}/s end to end ({}):\n",
        recorded.per_sec, recorded.load
    );
    if let Some(best) = broker
        .iter()
        .max_by(|a, b| a.sustained().total_cmp(&b.sustained()))
    {
        out.push_str(&format!(
            "  = {:.0}% of the RabbitMQ limit, {:.0} msgs/s (window {}): one persistent, \
             confirmed, acked message per command (cmdbus also sends ~3 transient events)\n",
            share(best.sustained()),
            best.sustained(),
            best.window
        ));
    }
    let best = |batched: bool| {
        pg.iter()
            .filter(|limit| (limit.batch > 1) == batched)
            .max_by(|a, b| a.per_sec.total_cmp(&b.per_sec))
    };
    for (limit, how) in [
        (best(false), "one row per statement"),
        (best(true), "batched"),
    ] {
        if let Some(limit) = limit {
            out.push_str(&format!(
                "  = {:.0}% of the PostgreSQL limit {how}, {:.0} commands/s ({}, {}): insert + 2 \
                 updates (cmdbus writes insert + 3 updates, and an attempt row inserted and \
                 updated)\n",
                share(limit.per_sec),
                limit.per_sec,
                rows(limit.batch),
                connections(limit.clients)
            ));
        }
    }
    out
}

fn rows(batch: usize) -> String {
    match batch {
        1 => "1 row per statement".to_owned(),
        batch => format!("{batch} rows per statement"),
    }
}

fn connections(clients: usize) -> String {
    match clients {
        1 => "1 client".to_owned(),
        clients => format!("{clients} clients"),
    }
}
