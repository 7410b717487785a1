//! Running the checker binary from a test: `cmdbus-check run --seed SEED ARGS…`, its output
//! printed (so `--nocapture` shows the counts), and whether it passed every check.

use std::process::Command;

/// What one checker run said.
pub(crate) struct Run {
    /// It exited 0: no violation.
    pub(crate) passed: bool,
    /// Its standard output, the counts line included.
    #[allow(dead_code)] // not every test reads the counts
    pub(crate) stdout: String,
}

pub(crate) fn run_checker(seed: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cmdbus-check"))
        .args(["run", "--seed", seed])
        .args(args)
        .output()
        .expect("cmdbus-check runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    Run {
        passed: output.status.success(),
        stdout,
    }
}
