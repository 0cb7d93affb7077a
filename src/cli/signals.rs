//! Ctrl-C and SIGTERM stop starting new items; the run ends `interrupted` and can be resumed.

use tokio_util::sync::CancellationToken;

pub(super) fn on_shutdown() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        errln!("stopping: no new items; items in flight may finish (Ctrl-C again to quit at once)");
        t.cancel();
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(super::exit::INTERRUPTED);
    });
    token
}
