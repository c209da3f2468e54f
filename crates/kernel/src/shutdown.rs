//! Graceful shutdown: one token that HTTP serving, WebSocket sessions and bus
//! consumers all watch, and a tracker that waits for them to finish.

use std::{future::Future, time::Duration};

pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// Waits `period`, or less if `shutdown` fires; `false` when it fired.
pub async fn pause(period: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(period) => true,
    }
}

/// Runs `work` at once, then every `period` after each run ends, until
/// `shutdown` fires (a run in progress finishes first).
pub async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        work().await;
        if !pause(period, &shutdown).await {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
