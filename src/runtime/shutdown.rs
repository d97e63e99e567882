//! The one stop signal of a running bot, and the register of every task it
//! spawned.
//!
//! mini-redis's shape, with the tokio project's own parts: a
//! [`CancellationToken`] is the signal (cloned into every task, each
//! looking at it only between units of work, so an HTTP poll and the
//! transaction that records it always finish), and a [`TaskTracker`]
//! holds every task spawned through [`Shutdown::spawn`], so the caller of
//! [`Shutdown::wait`] knows when the last one is done. No task of the bot is
//! detached: one that outlives the deadline is named in the log, not lost.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The stop signal and the tasks that must finish before the bot exits.
/// Clones share both.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A signal not given yet, with no task.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Tells every task to stop after its current unit of work. Giving it
    /// twice is harmless.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the signal was given.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once the signal is given.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Sleeps `pause`, or less if the signal comes first; returns whether it
    /// came. The pause between two units of work in every loop.
    pub async fn sleep(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(pause) => self.is_stopping(),
            _ = self.stop.cancelled() => true,
        }
    }

    /// Gives the signal when `trigger` resolves (Ctrl-C, SIGTERM). The
    /// task that waits for it is tracked and ends with the signal, whoever
    /// gives it.
    pub fn stop_on<F>(&self, trigger: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let signal = self.clone();
        self.spawn(async move {
            tokio::select! {
                _ = trigger => {
                    tracing::info!("stopping: no new polls; finishing what is in flight");
                    signal.stop();
                }
                _ = signal.stopped() => {}
            }
        });
    }

    /// Spawns `task` and keeps track of it until it ends. The task must
    /// end soon after [`Shutdown::stop`]: [`Shutdown::wait`] waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Waits until every task spawned through this signal has ended, at
    /// most `deadline` (`None`: however long it takes). Returns whether they
    /// all did. Tasks may still be spawned meanwhile (a connection accepted
    /// just before the stop): they are waited for too.
    pub async fn wait(&self, deadline: Option<Duration>) -> bool {
        self.tasks.close();
        match deadline {
            Some(d) => tokio::time::timeout(d, self.tasks.wait()).await.is_ok(),
            None => {
                self.tasks.wait().await;
                true
            }
        }
    }

    /// How many tracked tasks are still running (the log says so when the
    /// deadline passes).
    pub fn running(&self) -> usize {
        self.tasks.len()
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_sees_every_task_end_after_the_signal() {
        let s = Shutdown::new();
        for i in 0..3u64 {
            let s2 = s.clone();
            s.spawn(async move {
                s2.stopped().await;
                // Work in flight finishes after the signal.
                tokio::time::sleep(Duration::from_millis(10 * i)).await;
            });
        }
        assert!(
            !s.wait(Some(Duration::from_millis(50))).await,
            "not stopped yet"
        );
        assert_eq!(s.running(), 3);
        s.stop();
        assert!(s.wait(Some(Duration::from_secs(5))).await);
        assert_eq!(s.running(), 0);
    }

    #[tokio::test]
    async fn a_task_past_the_deadline_is_reported() {
        let s = Shutdown::new();
        s.spawn(tokio::time::sleep(Duration::from_secs(60)));
        s.stop();
        assert!(!s.wait(Some(Duration::from_millis(20))).await);
        assert_eq!(s.running(), 1);
    }
}
