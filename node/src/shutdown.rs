//! Shutdown on SIGINT or SIGTERM: the first signal asks every task to stop
//! cleanly (stop taking requests, finish or abandon the current step, flush
//! and close the database); a second one exits at once.

use tokio::sync::watch;

/// Exit code when a second signal cuts a clean shutdown short.
pub const EXIT_CODE_FORCED: i32 = 130;

/// A signal that the node should stop; clone it into every task.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether shutdown was asked for.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Waits until shutdown is asked for.
    pub async fn requested(&mut self) {
        // An error means the sender is gone, which also means: stop.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }
}

/// The sending side, for tests and for stopping on a fatal error.
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Asks every holder of the [`Shutdown`] to stop.
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }
}

/// A trigger and the signal it controls.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

/// Listens for SIGINT and SIGTERM: the first triggers a clean shutdown, the
/// second exits the process at once. Must run inside a tokio runtime.
pub fn listen_for_signals(trigger: ShutdownTrigger) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: stopping cleanly (send the signal again to exit at once)");
        trigger.trigger();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(EXIT_CODE_FORCED);
    });
    Ok(())
}
