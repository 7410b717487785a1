//! `cmdbus-example-worker`: cmdbus's worker running this application's own handlers
//! (`handlers.rs`), beside `cmdbus api` and `cmdbus notifier`. It takes the settings of
//! `cmdbus worker` (`CMDBUS_DATABASE_URL`, `CMDBUS_AMQP_URL`, `CMDBUS_NAMESPACE`,
//! `CMDBUS_LISTEN` for its health and metrics, …).

mod handlers;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cmdbus::worker::main(handlers::registry()).await
}
