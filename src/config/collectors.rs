//! Which collectors run: the node_exporter style `--collector.NAME` and
//! `--no-collector.NAME` switches, made from [`crate::collector::REGISTRY`] (a
//! collector's registration is its flags; nothing here names a collector), and the
//! [`Collectors`] they turn into. The dns collector's settings are `Config::dns`.

use std::sync::OnceLock;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::{invalid, ConfigError};
use crate::collector::{Scope, REGISTRY};

/// The collector switches as parsed, flattened into [`Flags`](super::Flags): per
/// collector, in registry order, `Some(true)` for `--collector.NAME`, `Some(false)`
/// for `--no-collector.NAME` (the later one wins), `None` for neither.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    switches: Vec<Option<bool>>,
}

/// The clap ids, flags, variables and help of one collector's two switches.
struct Switch {
    on: &'static str,
    off: &'static str,
    on_env: &'static str,
    off_env: &'static str,
    off_help: &'static str,
}

/// Made once: clap wants `'static` strings and the registry is `'static` too.
fn switches() -> &'static [Switch] {
    static SWITCHES: OnceLock<Vec<Switch>> = OnceLock::new();
    SWITCHES.get_or_init(|| {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        REGISTRY
            .iter()
            .map(|r| {
                let upper = r.name.to_ascii_uppercase();
                Switch {
                    on: leak(format!("collector.{}", r.name)),
                    off: leak(format!("no-collector.{}", r.name)),
                    on_env: leak(format!("SES_EXPORTER_COLLECTOR_{upper}")),
                    off_env: leak(format!("SES_EXPORTER_NO_COLLECTOR_{upper}")),
                    off_help: leak(format!("Switch the {} collector off", r.name)),
                }
            })
            .collect()
    })
}

impl Args for CollectorFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for (r, s) in REGISTRY.iter().zip(switches()) {
            cmd = cmd
                .arg(
                    Arg::new(s.on)
                        .long(s.on)
                        .env(s.on_env)
                        .help(r.help.trim_end_matches('.'))
                        .action(ArgAction::SetTrue)
                        .overrides_with(s.off),
                )
                .arg(
                    Arg::new(s.off)
                        .long(s.off)
                        .env(s.off_env)
                        .help(s.off_help)
                        .action(ArgAction::SetTrue)
                        .overrides_with(s.on),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for CollectorFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let switches = switches()
            .iter()
            .map(|s| {
                if matches.get_flag(s.on) {
                    Some(true)
                } else if matches.get_flag(s.off) {
                    Some(false)
                } else {
                    None
                }
            })
            .collect();
        Ok(CollectorFlags { switches })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl CollectorFlags {
    fn on(&self, position: usize) -> bool {
        let default = REGISTRY.get(position).is_some_and(|r| r.enabled_by_default);
        self.switches
            .get(position)
            .copied()
            .flatten()
            .unwrap_or(default)
    }

    /// The collectors switched on; an error when no target collector is.
    pub(super) fn enabled(&self) -> Result<Collectors, ConfigError> {
        let collectors = Collectors {
            on: (0..REGISTRY.len()).map(|p| self.on(p)).collect(),
        };
        if collectors.names().is_empty() {
            let target: Vec<&str> = REGISTRY
                .iter()
                .filter(|r| matches!(r.scope, Scope::Target(_)))
                .map(|r| r.name)
                .collect();
            let first_on = REGISTRY
                .iter()
                .find(|r| r.enabled_by_default && matches!(r.scope, Scope::Target(_)))
                .map_or("mail_from", |r| r.name);
            let list: Vec<String> = target.iter().map(|n| format!("--collector.{n}")).collect();
            return Err(invalid(
                format!("--no-collector.{first_on}"),
                format!(
                    "every collector is off: enable at least one of {}",
                    list.join(", ")
                ),
            ));
        }
        Ok(collectors)
    }

    /// Whether the exporter-wide collector `name` runs.
    pub(super) fn is_on(&self, name: &str) -> bool {
        REGISTRY
            .iter()
            .position(|r| r.name == name)
            .is_some_and(|p| self.on(p))
    }
}

/// Which collectors run, by their position in [`REGISTRY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collectors {
    on: Vec<bool>,
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            on: REGISTRY.iter().map(|r| r.enabled_by_default).collect(),
        }
    }
}

impl Collectors {
    /// The registry positions of every collector switched on.
    pub fn positions(&self) -> Vec<usize> {
        (0..self.on.len()).filter(|&p| self.on[p]).collect()
    }

    /// The target collectors switched on, by name, as in the flags and the
    /// `collector` label.
    pub fn names(&self) -> Vec<&'static str> {
        self.positions()
            .into_iter()
            .filter_map(|p| REGISTRY.get(p))
            .filter(|r| matches!(r.scope, Scope::Target(_)))
            .map(|r| r.name)
            .collect()
    }

    pub fn is_on(&self, name: &str) -> bool {
        REGISTRY
            .iter()
            .position(|r| r.name == name)
            .is_some_and(|p| self.on.get(p).copied().unwrap_or(false))
    }

    /// Switches a collector off that another one supersedes.
    pub(super) fn switch_off(&mut self, name: &str) {
        if let Some(p) = REGISTRY.iter().position(|r| r.name == name) {
            self.on[p] = false;
        }
    }
}
