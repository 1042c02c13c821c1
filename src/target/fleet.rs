//! The running set of targets ([`Targets`]): [`Targets::add`] starts a target's loop on a
//! task of its own under the supervisor, in the next slot of the exposition;
//! [`Targets::remove`] stops one and removes every series it had.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Target, TargetSettings, Wiring};
use crate::aws::TargetAws;
use crate::config::TargetConfig;
use crate::metrics::Telemetry;
use crate::model::TargetId;
use crate::publish::Slot;
use crate::supervise;

/// How long a removed target's task gets to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(9);

/// What every target is told besides its own configuration.
#[derive(Debug, Clone)]
pub struct Template {
    pub poll_interval: Duration,
    pub rate: f64,
    pub pacing: f64,
    pub timeout: Duration,
    /// The enabled target collectors, by their position in the registry.
    pub collectors: Vec<usize>,
    pub options: crate::collector::CollectorOptions,
}

struct Running {
    slot: Slot,
    /// Who the target is, as it learns it (its task holds the target's lock).
    id: watch::Receiver<TargetId>,
    target: Arc<Mutex<Target>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Fleet {
    wiring: Wiring,
    template: Template,
    next_slot: Slot,
    running: Vec<Running>,
    /// Set by [`Targets::stop_all`]: nothing is added after the shutdown.
    closed: bool,
}

/// The handle to the running targets: cheap to clone, shared by `run` and whatever
/// adds and removes targets while the exporter runs.
#[derive(Clone)]
pub struct Targets(Arc<Mutex<Fleet>>);

impl Targets {
    pub fn new(wiring: Wiring, template: Template) -> Targets {
        Targets(Arc::new(Mutex::new(Fleet {
            wiring,
            template,
            next_slot: 0,
            running: Vec::new(),
            closed: false,
        })))
    }

    /// Starts polling `config` through `aws`, after the targets already running in
    /// the exposition. Returns its slot; `None` once the exporter is shutting down.
    pub async fn add(&self, config: &TargetConfig, aws: Arc<dyn TargetAws>) -> Option<Slot> {
        let mut fleet = self.0.lock().await;
        if fleet.closed {
            return None;
        }
        let slot = fleet.next_slot;
        fleet.next_slot += 1;
        let template = &fleet.template;
        let settings = TargetSettings {
            slot,
            region: aws.region().to_owned(),
            provisional_account: config.role_account().unwrap_or("").to_owned(),
            fixed: config.identities.fixed.clone(),
            discovery: config.identities.discovery.clone(),
            poll_interval: template.poll_interval,
            rate: template.rate,
            pacing: template.pacing,
            timeout: template.timeout,
            collectors: template.collectors.clone(),
            options: template.options,
        };
        let context = format!("target {slot} in {}", settings.region);
        fleet.wiring.publisher.add_target(slot);
        // The target lives outside its task, so a restart after a panic resumes with
        // its records and account.
        let target = Target::new(aws, settings, &fleet.wiring);
        let id = target.watch_id();
        let target = Arc::new(Mutex::new(target));
        let (stop, stopped) = watch::channel(false);
        // Each target on its own task: one waiting on a slow or failing account never
        // holds up another.
        let task = tokio::spawn(supervise::run_locked(
            "poller",
            context,
            Arc::clone(&target),
            TargetWatch {
                target: Arc::clone(&target),
                telemetry: Arc::clone(&fleet.wiring.telemetry),
            },
            stopped,
        ));
        fleet.running.push(Running {
            slot,
            id,
            target,
            stop,
            task,
        });
        Some(slot)
    }

    /// The running targets: each one's slot and who it is (its account once STS
    /// answered, the provisional one before).
    pub async fn list(&self) -> Vec<(Slot, TargetId)> {
        let fleet = self.0.lock().await;
        fleet
            .running
            .iter()
            .map(|r| (r.slot, r.id.borrow().clone()))
            .collect()
    }

    /// Stops the target in `slot` and removes every series it had: its collectors'
    /// parts (after their last render), its identity facts (so the dns collector
    /// drops its domains), its health series and its claim on its account and
    /// region. `false` when no target is in it. By slot, not by account and region:
    /// a duplicate target (one that found its account and region polled by another)
    /// has the other's.
    pub async fn remove(&self, slot: Slot) -> bool {
        let running = {
            let mut fleet = self.0.lock().await;
            match fleet.running.iter().position(|r| r.slot == slot) {
                Some(i) => fleet.running.remove(i),
                None => return false,
            }
        };
        stop(running.slot, &running.stop, running.task).await;
        // The task is over (or aborted): the lock is free.
        running.target.lock().await.retire().await;
        let id = running.id.borrow().clone();
        info!(aws_account_id = %id.account, aws_region = %id.region, target_slot = slot, "target removed; its series are gone");
        true
    }

    /// Stops every target (shutdown): each ends its cycle where it is.
    pub async fn stop_all(&self) {
        let running = {
            let mut fleet = self.0.lock().await;
            fleet.closed = true;
            std::mem::take(&mut fleet.running)
        };
        for r in &running {
            let _ = r.stop.send(true);
        }
        for r in running {
            stop(r.slot, &r.stop, r.task).await;
        }
    }
}

/// Tells the target's task to stop and waits for it; one that does not stop in time
/// is aborted, so its lock is free after.
async fn stop(slot: Slot, stop: &watch::Sender<bool>, mut task: JoinHandle<()>) {
    let _ = stop.send(true);
    if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
        warn!(
            target_slot = slot,
            "a target did not stop in time; aborting it"
        );
        task.abort();
        let _ = task.await;
    }
}

/// A failed target loop shows `aws_ses_exporter_up 0` for its target until its next
/// cycle.
struct TargetWatch {
    target: Arc<Mutex<Target>>,
    telemetry: Arc<Telemetry>,
}

impl supervise::Watcher for TargetWatch {
    fn failed(&mut self) {
        self.telemetry.count_task_restart("poller");
        // The failed task dropped its lock; nothing else holds it.
        if let Ok(target) = self.target.try_lock() {
            target.mark_down();
        }
    }

    fn restarted(&mut self) {}
}
