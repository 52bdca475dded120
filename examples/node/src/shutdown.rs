//! Stopping on a signal: SIGTERM (what kubernetes, systemd and `docker stop` send) or SIGINT
//! (Ctrl-C). The server stops accepting at once and gets a bounded time to finish the requests
//! in flight; then the process exits whatever is left.
//!
//! The kubernetes example compiles this same file (`#[path]`): keep it free of anything
//! specific to the node.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM: kubernetes, systemd, `docker stop`, `kill`.
    Terminate,
    /// SIGINT: Ctrl-C (the only one outside unix).
    Interrupt,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        })
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed by this call, not when
/// the future is first polled, so a signal that arrives before serving starts is not lost.
/// (Once installed, SIGTERM no longer kills the process, which matters most as PID 1 in a
/// container: there the kernel ignores a signal without a handler.)
#[cfg(unix)]
pub(crate) fn signal() -> std::io::Result<impl Future<Output = Signal> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => Signal::Terminate,
            _ = interrupt.recv() => Signal::Interrupt,
        }
    })
}

/// Resolves on Ctrl-C, the only stop signal outside unix.
#[cfg(not(unix))]
pub(crate) fn signal() -> std::io::Result<impl Future<Output = Signal> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No way to be told: never stop on our own.
            std::future::pending::<()>().await;
        }
        Signal::Interrupt
    })
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// A signal arrived and every connection closed within the drain time.
    Drained(Signal),
    /// A signal arrived and the drain time ran out with requests still in flight; they are
    /// abandoned.
    DrainTimedOut(Signal),
    /// The server ended by itself, without a signal or an error.
    Ended,
}

impl Stopped {
    /// Logs how serving ended; `drain` is the drain time that was given.
    pub(crate) fn log(self, drain: Duration) {
        match self {
            Stopped::Drained(signal) => tracing::info!(%signal, "stopped: every request answered"),
            Stopped::DrainTimedOut(signal) => tracing::warn!(
                %signal,
                "stopped: the drain time ({drain:?}) ran out, requests still in flight were dropped"
            ),
            Stopped::Ended => tracing::info!("stopped: the listener closed"),
        }
    }
}

/// The future a server is told to stop with.
pub(crate) type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the server that `serve` builds until `signal` resolves, then gives it at most `drain`
/// to finish. `serve` receives the future that resolves on the signal; the server must stop
/// accepting then and end once its open requests are answered, as tonic's
/// `serve_with_incoming_shutdown` does. An error of the server is returned as is.
pub(crate) async fn serve_until<S, E>(
    signal: impl Future<Output = Signal> + Send + 'static,
    drain: Duration,
    serve: impl FnOnce(StopSignal) -> S,
) -> Result<Stopped, E>
where
    S: Future<Output = Result<(), E>>,
{
    let (received_tx, mut received_rx) = oneshot::channel();
    let stop = Box::pin(async move {
        let signal = signal.await;
        tracing::info!(
            "received {signal}, draining: accepting no more connections, at most {drain:?} \
             for the requests in flight"
        );
        let _ = received_tx.send(signal);
    });
    let server = serve(stop);
    tokio::pin!(server);
    let signal = tokio::select! {
        result = &mut server => {
            result?;
            // The server ends without an error only after its stop signal, or when its
            // listener ends.
            return Ok(match received_rx.try_recv() {
                Ok(signal) => Stopped::Drained(signal),
                Err(_) => Stopped::Ended,
            });
        }
        Ok(signal) = &mut received_rx => signal,
    };
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result.map(|()| Stopped::Drained(signal)),
        Err(_elapsed) => Ok(Stopped::DrainTimedOut(signal)),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::{Signal, StopSignal, Stopped, serve_until};

    /// A stand-in for the signal: resolves when the test sends it one.
    fn fake_signal() -> (
        oneshot::Sender<Signal>,
        impl Future<Output = Signal> + Send + 'static,
    ) {
        let (tx, rx) = oneshot::channel();
        (
            tx,
            async move { rx.await.expect("the test sends a signal") },
        )
    }

    /// A server that ends `work` after its stop signal, as one with a request in flight does.
    async fn server(stop: StopSignal, work: Duration) -> Result<(), String> {
        stop.await;
        tokio::time::sleep(work).await;
        Ok(())
    }

    // Paused time: no sockets here, so the clock only moves when every task waits on a timer.
    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_finish_within_the_drain_time() {
        let (send, signal) = fake_signal();
        send.send(Signal::Terminate).unwrap();
        let started = Instant::now();
        let stopped = serve_until(signal, Duration::from_secs(10), |stop| {
            server(stop, Duration::from_secs(3))
        })
        .await;
        assert_eq!(stopped, Ok(Stopped::Drained(Signal::Terminate)));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "waited for the work"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_time_bounds_the_wait() {
        let (send, signal) = fake_signal();
        send.send(Signal::Interrupt).unwrap();
        let started = Instant::now();
        let stopped = serve_until(signal, Duration::from_secs(10), |stop| {
            server(stop, Duration::from_secs(3600))
        })
        .await;
        assert_eq!(stopped, Ok(Stopped::DrainTimedOut(Signal::Interrupt)));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10),
            "gave up at the bound"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_error_before_any_signal_is_returned() {
        let (_send, signal) = fake_signal();
        let stopped = serve_until(signal, Duration::from_secs(10), |_stop| async {
            Err::<(), _>("cannot accept".to_owned())
        })
        .await;
        assert_eq!(stopped, Err("cannot accept".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_ends_by_itself_is_not_a_signal() {
        let (_send, signal) = fake_signal();
        let stopped = serve_until(signal, Duration::from_secs(10), |_stop| async {
            Ok::<(), String>(())
        })
        .await;
        assert_eq!(stopped, Ok(Stopped::Ended));
    }
}
