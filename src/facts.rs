//! The one channel of identity facts ([`Facts`], built by [`crate::run`]): what the SES
//! collectors learnt about each (target, identity) that the dns collector checks in DNS,
//! as plain data, which the dns collector reads through a `watch` channel.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::{IdentityFacts, TargetId};

/// Identity → its facts, for one target.
pub type TargetFacts = BTreeMap<String, IdentityFacts>;

/// Every target's facts.
pub type AllFacts = BTreeMap<TargetId, Arc<TargetFacts>>;

pub struct Facts {
    tx: watch::Sender<Arc<AllFacts>>,
}

impl Default for Facts {
    fn default() -> Self {
        Facts::new()
    }
}

impl Facts {
    pub fn new() -> Facts {
        Facts {
            tx: watch::Sender::new(Arc::new(AllFacts::new())),
        }
    }

    /// What the dns collector reads.
    pub fn subscribe(&self) -> watch::Receiver<Arc<AllFacts>> {
        self.tx.subscribe()
    }

    /// The MAIL FROM domains of one target's identities (identity → domain): the
    /// identities left out have none.
    pub fn set_mail_from(&self, target: &TargetId, domains: BTreeMap<String, String>) {
        self.replace(target, domains, |f| &mut f.mail_from_domain);
    }

    /// Replaces one field of every identity of `target`; identities left with no
    /// fact are dropped. Wakes the readers only when something changed.
    fn replace<T: PartialEq>(
        &self,
        target: &TargetId,
        values: BTreeMap<String, T>,
        field: fn(&mut IdentityFacts) -> &mut Option<T>,
    ) {
        self.tx.send_if_modified(|all| {
            let before = all.get(target).map(Arc::clone).unwrap_or_default();
            let mut next = (*before).clone();
            for facts in next.values_mut() {
                *field(facts) = None;
            }
            for (identity, value) in values {
                *field(next.entry(identity).or_default()) = Some(value);
            }
            next.retain(|_, facts| !facts.is_empty());
            if next == *before && (all.contains_key(target) || next.is_empty()) {
                return false;
            }
            let mut map = (**all).clone();
            if next.is_empty() {
                map.remove(target);
            } else {
                map.insert(target.clone(), Arc::new(next));
            }
            *all = Arc::new(map);
            true
        });
    }

    /// A target went: its facts go with it.
    pub fn remove_target(&self, target: &TargetId) {
        self.tx.send_if_modified(|all| {
            if !all.contains_key(target) {
                return false;
            }
            let mut map = (**all).clone();
            map.remove(target);
            *all = Arc::new(map);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_field_drops_identities_left_without_facts_and_unchanged_is_quiet() {
        let facts = Facts::new();
        let mut rx = facts.subscribe();
        let t = TargetId::new("111111111111", "eu-west-1");
        let domains = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        facts.set_mail_from(
            &t,
            domains(&[("a.example.com", "m.a"), ("b.example.com", "m.b")]),
        );
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update()[&t].len(), 2);
        facts.set_mail_from(
            &t,
            domains(&[("a.example.com", "m.a"), ("b.example.com", "m.b")]),
        );
        assert!(!rx.has_changed().unwrap(), "nothing changed");
        facts.set_mail_from(&t, domains(&[("a.example.com", "m.a")]));
        assert_eq!(
            rx.borrow_and_update()[&t].keys().collect::<Vec<_>>(),
            ["a.example.com"]
        );
        facts.remove_target(&t);
        assert!(rx.borrow_and_update().is_empty());
        facts.set_mail_from(&t, BTreeMap::new());
        assert!(
            !rx.has_changed().unwrap(),
            "no facts for a target is no entry"
        );
    }
}
