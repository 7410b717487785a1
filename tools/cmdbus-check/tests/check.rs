//! The short fixed-seed fault run of the test suite: real api, worker and notifier processes,
//! faults injected for a minute, then every check. It leaves out the whole-service
//! faults (the `service_faults` test has them), so it never restarts the shared services. A
//! longer run is `cmdbus-check run --seed N --duration SECS`.

mod common;

use common::run_checker;

/// Fixed, so a failure here can be run again with the same choices.
const SEED: &str = "20261121";

#[test]
fn a_fixed_seed_fault_run_passes_every_check() {
    let run = run_checker(
        SEED,
        &[
            "--duration",
            "60",
            "--settle-secs",
            "60",
            "--no-service-faults",
        ],
    );
    assert!(run.passed, "the fault run found violations (seed {SEED})");
}
