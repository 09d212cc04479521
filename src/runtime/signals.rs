//! SIGINT and SIGTERM turned into a "stop requested" flag the drivers watch.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

/// A receiver that turns true on the first SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<watch::Receiver<bool>, String> {
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| format!("cannot install SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| format!("cannot install SIGINT handler: {e}"))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
        let _ = tx.send(true);
        // Keep the sender alive so receivers never see a closed channel.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// Why the session was asked to restart by a process signal.
static RESTART: std::sync::OnceLock<watch::Sender<(u64, &'static str)>> =
    std::sync::OnceLock::new();

/// Installs the handlers of SIGUSR1 and SIGHUP (restart the session: the remote is resolved
/// again, as dynamic-DNS setups rely on) once per process; returns a receiver that changes on
/// each such signal, carrying the signal's name. Without a tokio runtime able to install the
/// handlers, the receiver simply never changes.
pub fn restart_requests() -> watch::Receiver<(u64, &'static str)> {
    RESTART
        .get_or_init(|| {
            let (tx, _) = watch::channel((0, ""));
            let tx2 = tx.clone();
            match (
                signal(SignalKind::user_defined1()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(mut usr1), Ok(mut hup)) => {
                    tokio::spawn(async move {
                        loop {
                            let name = tokio::select! {
                                _ = usr1.recv() => "SIGUSR1",
                                _ = hup.recv() => "SIGHUP",
                            };
                            info!("{name} received, restarting the connection");
                            tx2.send_modify(|(n, r)| {
                                *n += 1;
                                *r = name;
                            });
                        }
                    });
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("cannot install SIGUSR1/SIGHUP handlers: {e}")
                }
            }
            tx
        })
        .subscribe()
}
