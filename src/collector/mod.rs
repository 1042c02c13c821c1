//! The collectors, one module each, and what they share: the [`Collector`] trait, its
//! cycle's [`Ctx`] and [`Progress`], and the one list ([`REGISTRY`]) from which the
//! target loop runs them, the exposition takes its order and the flags are made.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::aws::{Aws, Operation};
use crate::facts::Facts;
use crate::metrics::TargetTelemetry;
use crate::model::TargetId;
use crate::publish::{Publisher, Publishing};

pub mod identity;

/// Declares the collector modules and [`REGISTRY`] in one list: the order is the
/// exposition's and the flags'.
macro_rules! collectors {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*
        /// Every collector, in exposition order.
        pub const REGISTRY: &[Registration] = &[$($name::REGISTRATION),*];
    };
}

collectors!(mail_from, dkim, verification, quota, dns);

/// What a collector tells the rest of the exporter about itself.
pub struct Registration {
    /// The name in `--collector.NAME` and in the `collector` label.
    pub name: &'static str,
    pub enabled_by_default: bool,
    /// The help of `--collector.NAME`.
    pub help: &'static str,
    pub scope: Scope,
}

pub enum Scope {
    /// One instance per target, made by this function and run by the target loop
    /// each cycle.
    Target(fn(Outlet) -> Box<dyn Collector>),
    /// One task for the whole exporter, started by [`crate::run`].
    Exporter,
}

impl Registration {
    /// The position of the collector called `name` in [`REGISTRY`].
    pub fn position(name: &str) -> Option<usize> {
        REGISTRY.iter().position(|r| r.name == name)
    }
}

/// One collector of one target. Each cycle it asks AWS through its [`Ctx`] (rate-limited
/// and retried by the target, so it never sees a throttle), turns the answers into
/// records and hands them, with the function that renders them, to its [`Publishing`],
/// which renders them off the async threads and publishes them.
pub trait Collector: Send + Sync {
    /// The SES operations it calls: its request series and rate limiters.
    fn operations(&self) -> &'static [Operation];

    /// One cycle: ask, record, render, publish.
    fn cycle<'a>(&'a mut self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Progress>;

    /// Waits for its render in flight: after its target stopped, before its series
    /// are removed, so no render publishes after.
    fn settle(&mut self) -> BoxFuture<'_, ()>;

    /// The MAIL FROM records, for tests of the target loop.
    #[cfg(any(test, feature = "test-support"))]
    fn mail_from_records(&self) -> Option<&crate::model::Snapshot> {
        None
    }
}

/// What a collector's part of a cycle achieved.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Every request it made was answered (or refused for an invalid identity).
    pub complete: bool,
    /// SES answered at least one request.
    pub answered: bool,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            complete: true,
            answered: false,
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// What a collector's cycle gets from its target.
pub struct Ctx<'a> {
    /// AWS through the target's rate limiters and retries: every attempt is spaced
    /// and counted there.
    pub aws: &'a dyn Aws,
    pub telemetry: &'a TargetTelemetry,
    /// The identities to ask about: sorted, without duplicates.
    pub watched: &'a Arc<[String]>,
    /// The static list, sorted: an identity SES leaves out is kept as `Missing`
    /// only when it is listed here.
    pub fixed: &'a [String],
    /// Who the target is: what its parts and facts are keyed by.
    pub id: &'a TargetId,
    pub account: &'a str,
    /// The target's label pairs (see [`crate::render::target_labels`]).
    pub labels: &'a Arc<str>,
    pub region: &'a str,
    pub plan: Plan,
}

/// What a target collector is made with: where its parts go, and the channel of
/// identity facts for the dns collector.
#[derive(Clone)]
pub struct Outlet {
    pub publisher: Arc<Publisher>,
    /// The collector's position in [`REGISTRY`].
    pub collector: usize,
    pub facts: Arc<Facts>,
}

impl Outlet {
    /// The collector's render-and-publish path.
    pub fn publishing<S: Default + Send + 'static>(&self) -> Publishing<S> {
        Publishing::new(Arc::clone(&self.publisher), self.collector)
    }
}

/// How fast a cycle's identity collectors send their batches.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The ceiling, `--ses.rate`; the limiters enforce it whatever the plan says.
    pub rate: f64,
    /// The time over which each collector spreads its batches (`--ses.pacing` of
    /// the poll interval); `None`: as fast as the limiter allows.
    pub spread: Option<Duration>,
    /// The poll interval: the quota collector makes one call of each operation per
    /// cycle.
    pub interval: Duration,
}

impl Plan {
    /// The least time from the start of one planned batch to the start of the
    /// next, when paced.
    pub fn pace(&self, batches: usize) -> Option<Duration> {
        let spread = self.spread?;
        (batches > 1).then(|| spread.div_f64(batches as f64))
    }

    /// The requests per second planned for `batches`: the ceiling unless paced.
    pub fn requests_per_second(&self, batches: usize) -> f64 {
        match self.spread {
            _ if batches == 0 => 0.0,
            Some(spread) => (batches as f64 / spread.as_secs_f64()).min(self.rate),
            None => self.rate,
        }
    }
}
