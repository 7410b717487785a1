//! The fixed-seed fault run (90 s) at 300 commands a second with every fault kind the checker has:
//! whole-service faults (PostgreSQL restarted, PostgreSQL stopped immediately and started
//! again, every broker node killed at once and started again) beside the per-process ones,
//! hostile handlers (blocking a thread, spinning the CPU, panicking, holding their claim's
//! transaction open), replays and exception-lane re-runs of keyed commands, and retention at
//! 45 s throughout; then every check, "never two running per key" and lost-versus-draining
//! included. It restarts the machine's PostgreSQL and RabbitMQ, so, like `cmdbus`'s `faults`
//! binary, it must run alone: cargo runs test binaries one after another, and this binary
//! holds this one test.

mod common;

use common::run_checker;

/// Fixed, so a failure here can be run again with the same choices.
const SEED: &str = "20261207";

/// The value of ` name=N ` in the checker's counts line.
fn count(stdout: &str, name: &str) -> u64 {
    stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_fixed_seed_run_at_300_per_second_with_service_faults_passes_every_check() {
    let run = run_checker(
        SEED,
        &["--duration", "90", "--rate", "300", "--settle-secs", "240"],
    );
    let service_faults = count(&run.stdout, "pg_restart")
        + count(&run.stdout, "pg_crash")
        + count(&run.stdout, "broker_kill_all");
    assert!(
        service_faults >= 2,
        "the run made {service_faults} whole-service faults (seed {SEED})"
    );
    assert!(run.passed, "the fault run found violations (seed {SEED})");
}
