//! Keeps the exporter's background tasks (each target's loop, the dns collector, the
//! web-config watcher) running: [`run`] restarts a task that panics or ends before
//! shutdown, with backoff; a [`Task`]'s state lives outside it, so a restart resumes.
//!
//! Without this a panicking target loop would leave `aws_ses_exporter_up` at its last
//! value (possibly 1) and its series frozen, which no alert could tell from a
//! healthy, unchanging account.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::time::{sleep, Instant};
use tracing::error;

/// The first wait before a restart; doubled for each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A task that ran this long before failing starts over at [`FIRST_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(300);

/// A long-running job whose state outlives its task: [`run_locked`] keeps it behind a
/// mutex outside the task, so a task restarted after a panic resumes with it.
pub trait Task: Send + 'static {
    /// Runs until `shutdown` (or until it fails).
    fn run(&mut self, shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> + Send;
}

/// [`run`] for a [`Task`] whose state lives in `task`, outside the spawned task.
pub async fn run_locked<T: Task, W: Watcher>(
    name: &'static str,
    context: String,
    task: Arc<Mutex<T>>,
    watcher: W,
    shutdown: watch::Receiver<bool>,
) {
    let rx = shutdown.clone();
    let start = move || {
        let task = Arc::clone(&task);
        let rx = rx.clone();
        async move { task.lock_owned().await.run(rx).await }
    };
    run(name, context, start, watcher, shutdown).await;
}

/// What a supervisor tells about its task's failures.
pub trait Watcher: Send + 'static {
    /// The task failed and will be restarted: mark its values as not current.
    fn failed(&mut self);
    /// The task was started again after a failure.
    fn restarted(&mut self);
}

/// Runs `start()` as a task until `shutdown`, restarting it with backoff when it
/// panics or ends early. `name` is the `task` label and names it in the log;
/// `context` adds the target (account and region) for a target's loop. A failure is
/// logged once and told to `watcher`, which counts it in
/// `aws_ses_exporter_task_restarts_total{task}` and marks the task down; what the task
/// published stays served meanwhile.
pub async fn run<F, Fut, W>(
    name: &'static str,
    context: String,
    mut start: F,
    mut watcher: W,
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = ()> + Send + 'static,
    W: Watcher,
{
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let result = tokio::spawn(start()).await;
        // A task ends when the shutdown is asked for; only an end before that is a failure.
        if *shutdown.borrow() {
            return;
        }
        let why = match result {
            Ok(()) => "ended".to_owned(),
            Err(err) if err.is_panic() => format!("panicked: {}", panic_text(err.into_panic())),
            Err(err) => format!("was cancelled: {err}"),
        };
        if started.elapsed() >= HEALTHY_RUN {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let delay = FIRST_BACKOFF
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(MAX_BACKOFF);
        watcher.failed();
        // One line per failure; the backoff bounds how often that can be.
        error!(task = name, context = %context, restart_in = ?delay, "background task {why}; restarting it");
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            () = sleep(delay) => {}
        }
        watcher.restarted();
    }
}

/// The message of a panic payload (`panic!("...")` carries a `&str` or a `String`).
fn panic_text(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}

/// Resolves when a shutdown is asked for on `rx`, or when no one can ask any more.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(&'static str, Instant)>>>);

    impl Watcher for Log {
        fn failed(&mut self) {
            self.0.lock().unwrap().push(("failed", Instant::now()));
        }
        fn restarted(&mut self) {
            self.0.lock().unwrap().push(("restarted", Instant::now()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_with_growing_backoff_until_shutdown() {
        let runs = Arc::new(AtomicU32::new(0));
        let log = Log::default();
        let (tx, rx) = watch::channel(false);
        let r = Arc::clone(&runs);
        let stop = rx.clone();
        let supervisor = tokio::spawn(run(
            "test",
            String::new(),
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let mut stop = stop.clone();
                async move {
                    if n < 3 {
                        panic!("run {n} fails");
                    }
                    // The fourth run stays up until the shutdown.
                    stopped(&mut stop).await;
                }
            },
            log.clone(),
            rx,
        ));
        sleep(Duration::from_secs(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        let events = log.0.lock().unwrap().clone();
        let kinds: Vec<_> = events.iter().map(|e| e.0).collect();
        assert_eq!(
            kinds,
            [
                "failed",
                "restarted",
                "failed",
                "restarted",
                "failed",
                "restarted"
            ]
        );
        // 1 s, 2 s, 4 s between a failure and its restart.
        let waits: Vec<Duration> = events.chunks(2).map(|p| p[1].1 - p[0].1).collect();
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs), "backoff doubles");
        tx.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4, "not restarted at shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_early_is_restarted_and_one_ending_at_shutdown_is_not() {
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, rx) = watch::channel(false);
        let r = Arc::clone(&runs);
        let supervisor = tokio::spawn(run(
            "test",
            String::new(),
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                async {}
            },
            Log::default(),
            rx,
        ));
        sleep(Duration::from_millis(3500)).await;
        // Ends at 0, restarted at 1 s, ends, restarted at 3 s (after 2 s).
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tx.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn panic_payloads_become_text() {
        assert_eq!(panic_text(Box::new("static")), "static");
        assert_eq!(panic_text(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_text(Box::new(7u8)), "(no message)");
    }
}
