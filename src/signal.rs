//! Process signals: SIGTERM/SIGINT end the process gracefully, SIGHUP reloads.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler can be installed");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; draining"),
        _ = int.recv() => tracing::info!("SIGINT received; draining"),
    }
}

/// A stream of SIGHUPs (`recv().await` once per signal).
pub fn reloads() -> Signal {
    signal(SignalKind::hangup()).expect("SIGHUP handler can be installed")
}
