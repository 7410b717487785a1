//! A service manager's stop, SIGTERM, while the broker hangs (its node stopped answering, or the
//! network between was cut: connections stay open and nothing arrives): the process must still
//! end on its own, well within systemd's `TimeoutStopSec` or WinSW's `<stoptimeout>`, instead of
//! waiting for ever for the broker to confirm that its consumers are cancelled.

use crate::{
    common::{Env, process::Proc, wait_ready},
    gate::{BrokerGate, Gate},
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_within_its_bounds_while_the_broker_hangs() {
    let env = Env::new();
    let log = std::env::temp_dir().join(format!("cmdbus-{}.log", env.namespace));
    let gate = BrokerGate::start(Gate::Forward).await;
    let mut server = Proc::spawn_logging(
        &env,
        "all",
        &[
            ("CMDBUS_AMQP_URL", &gate.url()),
            ("CMDBUS_SHUTDOWN_GRACE_SECS", "5"),
            ("CMDBUS_LOG", "info"),
        ],
        &log,
    );
    wait_ready(&reqwest::Client::new(), &server.base).await;

    gate.set(Gate::Freeze);
    server.signal("TERM");
    // The grace (5 s), the consumers' cancel bound (5 s), and room for a loaded machine; far
    // under the unit's TimeoutStopSec=90.
    let exited = server
        .exit_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no exit after SIGTERM while the broker hangs: see {log:?}"));
    assert!(exited, "a clean exit");
    let _ = std::fs::remove_file(&log);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}
