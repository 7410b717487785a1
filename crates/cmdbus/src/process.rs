//! What every cmdbus binary does around its role: stop on a signal (SIGTERM and Ctrl-C; on
//! Windows the console's events too). Its logging is `logging.rs`.

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on SIGTERM or Ctrl-C; on Windows on Ctrl-C, Ctrl-Break, the console's
/// closing and the system's shutdown (what a service wrapper such as WinSW sends to stop it).
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(windows)]
    let terminate = windows_stop();
    #[cfg(not(any(unix, windows)))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Waits for Ctrl-Break, the console's closing or the system's shutdown. For the last two the
/// process is held alive while it stops (tokio never returns from the console handler), but
/// Windows ends it after its own timeout, about 5 s for a closing console: a drain longer than
/// that needs a service wrapper's stop (Ctrl-C) instead. A log-off is not a stop: a service
/// sees every user's.
#[cfg(windows)]
async fn windows_stop() {
    use tokio::signal::windows;
    let (ctrl_break, ctrl_close, ctrl_shutdown) = (
        windows::ctrl_break(),
        windows::ctrl_close(),
        windows::ctrl_shutdown(),
    );
    let (mut ctrl_break, mut ctrl_close, mut ctrl_shutdown) =
        match (ctrl_break, ctrl_close, ctrl_shutdown) {
            (Ok(ctrl_break), Ok(ctrl_close), Ok(ctrl_shutdown)) => {
                (ctrl_break, ctrl_close, ctrl_shutdown)
            }
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                tracing::error!(%error, "cannot listen for the console's stop events");
                return std::future::pending::<()>().await;
            }
        };
    tokio::select! {
        _ = ctrl_break.recv() => tracing::info!("Ctrl-Break"),
        _ = ctrl_close.recv() => tracing::info!("the console is closing"),
        _ = ctrl_shutdown.recv() => tracing::info!("the system is shutting down"),
    }
}
