//! The multi-process run of the test suite on the machine's single broker: 2 api, 3 worker and
//! 2 notifier processes take a stream of commands (ordering keys, retries, permanent failures,
//! cancels, replays) while one process of each role is killed with SIGKILL mid-stream and
//! respawned; then the checker's checks: every accepted command terminal, no effect run twice,
//! order per key kept, every WebSocket client's final view equal to PostgreSQL's.

mod common;

use common::run_checker;

/// Fixed, so a failure here can be run again with the same choices.
const SEED: &str = "20261122";

#[test]
fn a_process_of_each_role_killed_mid_stream_loses_and_repeats_nothing() {
    let run = run_checker(
        SEED,
        &[
            "--duration",
            "30",
            "--faults",
            "role-kills",
            "--apis",
            "2",
            "--workers",
            "3",
            "--notifiers",
            "2",
            "--settle-secs",
            "45",
        ],
    );
    assert!(run.passed, "the run found violations (seed {SEED})");
    // The kills happened: one of each role.
    assert!(
        run.stdout.contains(" kill=3 "),
        "three processes were killed"
    );
}
