//! `cmdbus-bench keyed`: a burst of keyed commands — `keys` ordering keys, `per_key` commands
//! each, one in `fail_every` failing once (a 1 s backoff) — and how long the backlog takes to
//! drain, with how many deliveries the server made for it (from its `/metrics`). Order by key is
//! sequential per key, so the floor is each key's backoffs one after another; the rest is what
//! waiting costs.

use anyhow::Context as _;
use reqwest::header::{self, HeaderValue};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::args::KeyedArgs;

/// How often the server's counts are read while the backlog drains.
const POLL: Duration = Duration::from_millis(200);

pub(crate) async fn run(args: KeyedArgs) -> anyhow::Result<()> {
    let bearer = HeaderValue::from_str(&format!("Bearer {}", args.server.key))
        .context("the key is not a valid header value")?;
    let http = reqwest::Client::builder()
        .default_headers([(header::AUTHORIZATION, bearer)].into_iter().collect())
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let base = args.server.url.trim_end_matches('/').to_owned();
    let before = counters(&http, &base).await?;
    let run = format!("{:x}", rand_suffix());
    let started = Instant::now();
    let mut submitters = tokio::task::JoinSet::new();
    for key in 0..args.keys {
        let http = http.clone();
        let url = format!("{base}/v1/commands");
        let ordering_key = format!("bench-{run}-{key}");
        let (per_key, fail_every) = (args.per_key, args.fail_every);
        // One submitter per key, in order: the key's order is the order of its submits.
        submitters.spawn(async move {
            for n in 0..per_key {
                let body = if fail_every > 0 && n % fail_every == fail_every / 2 {
                    serde_json::json!({"type": "demo.fail", "payload": {"times": 1},
                                       "max_attempts": 2, "ordering_key": ordering_key})
                } else {
                    serde_json::json!({"type": "demo.noop", "ordering_key": ordering_key})
                };
                let response = http.post(&url).json(&body).send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "submit refused: {}",
                    response.status()
                );
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = submitters.join_next().await {
        done??;
    }
    let submitted = started.elapsed();
    let deadline = started + args.timeout;
    let drained = loop {
        let now = counters(&http, &base).await?;
        let unfinished: f64 = ["new", "queue", "running"]
            .iter()
            .map(|status| now.get(&format!("cmdbus_commands{{status=\"{status}\"}}")))
            .map(|count| count.copied().unwrap_or(0.0))
            .sum();
        if unfinished == 0.0 {
            break Some(started.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    let after = counters(&http, &base).await?;
    let delta = |prefix: &str| -> f64 {
        after
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| value - before.get(name).copied().unwrap_or(0.0))
            .sum::<f64>()
            .max(0.0)
    };
    let skipped_by = |reason: &str| {
        delta(&format!(
            "cmdbus_deliveries_skipped_total{{reason=\"{reason}\"}}"
        ))
    };
    let commands = (args.keys * args.per_key) as f64;
    let attempts = delta("cmdbus_attempts_total");
    let skipped = delta("cmdbus_deliveries_skipped_total");
    let failing = if args.fail_every == 0 {
        0
    } else {
        args.keys * args.per_key.div_ceil(args.fail_every)
    };
    println!(
        "keyed: {} keys x {} commands, {failing} failing once (1 s backoff)",
        args.keys, args.per_key
    );
    println!("  submitted in {:.1} s", submitted.as_secs_f64());
    match drained {
        Some(drained) => println!("  drained in {:.1} s", drained.as_secs_f64()),
        None => println!("  NOT drained within {:.0} s", args.timeout.as_secs_f64()),
    }
    println!(
        "  deliveries: {:.0} runs + {skipped:.0} skipped = {:.2} per command; \
         re-deliveries beyond one per attempt: {:.2} per command",
        attempts,
        (attempts + skipped) / commands,
        skipped / commands
    );
    println!(
        "  skipped: {:.0} bounced (waiting for the key), {:.0} held in PostgreSQL, {:.0} duplicate; \
         {:.0} handed on, {:.0} held by the api before publishing",
        skipped_by("ordered"),
        skipped_by("held"),
        skipped_by("duplicate"),
        delta("cmdbus_handed_on_total"),
        delta("cmdbus_held_total"),
    );
    println!();
    Ok(())
}

/// Every sample of the server's `/metrics`, by name with labels.
async fn counters(http: &reqwest::Client, base: &str) -> anyhow::Result<HashMap<String, f64>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect())
}

/// A suffix that keeps this run's keys apart from an earlier run's.
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}
