//! The one channel of identity facts ([`Facts`], built by [`crate::run`]): what the SES
//! collectors learnt about each (target, identity) that the dns collector checks in DNS
//! and judges DMARC by,
//! as plain data, which the dns collector reads through a `watch` channel.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::model::{DkimAttributes, DkimOrigin, IdentityFacts, MailFromAttributes, TargetId};

/// Identity → its facts, for one target.
pub type TargetFacts = BTreeMap<String, IdentityFacts>;

/// Every target's facts.
pub type AllFacts = BTreeMap<TargetId, Arc<TargetFacts>>;

pub struct Facts {
    tx: watch::Sender<Arc<AllFacts>>,
    /// The targets whose facts are taken: added when a target learns who it is,
    /// removed when it goes, so a late update of a removed target is dropped. A std
    /// mutex, held across no await.
    live: Mutex<HashSet<TargetId>>,
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
            live: Mutex::new(HashSet::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashSet<TargetId>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A target learnt who it is: its facts are taken from now on.
    pub fn add_target(&self, target: &TargetId) {
        self.live().insert(target.clone());
    }

    /// What the dns collector reads.
    pub fn subscribe(&self) -> watch::Receiver<Arc<AllFacts>> {
        self.tx.subscribe()
    }

    /// The MAIL FROM attributes of one target's identities (the identities SES
    /// answered for). Taken lazily: nothing is built while no one reads the facts (the
    /// dns collector is off).
    pub fn set_mail_from(
        &self,
        target: &TargetId,
        attributes: impl IntoIterator<Item = (String, MailFromAttributes)>,
    ) {
        self.replace(target, attributes, |f| &mut f.mail_from);
    }

    /// The legacy verification tokens of one target's identities (those SES sent
    /// one for).
    pub fn set_verification_tokens(
        &self,
        target: &TargetId,
        tokens: impl IntoIterator<Item = (String, String)>,
    ) {
        self.replace(target, tokens, |f| &mut f.verification_token);
    }

    /// The Easy DKIM attributes of one target's identities (the identities SES
    /// answered for).
    pub fn set_dkim(
        &self,
        target: &TargetId,
        attributes: impl IntoIterator<Item = (String, DkimAttributes)>,
    ) {
        self.replace(target, attributes, |f| &mut f.dkim);
    }

    /// The DKIM origins of one target's domain identities (those SES answered for).
    /// They add to what the other collectors know and name no identity of their own:
    /// one the dkim collector dropped while the origins were asked is not brought
    /// back.
    pub fn set_dkim_origins(
        &self,
        target: &TargetId,
        origins: impl IntoIterator<Item = (String, DkimOrigin)>,
    ) {
        self.replace_with(target, origins, |f| &mut f.dkim_origin, false);
    }

    /// Whether anyone reads the facts (the dns collector is on): a collector that
    /// spends calls only to feed them need not, otherwise.
    pub fn read(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// The domain identities of `target` with Easy DKIM tokens: those whose DKIM
    /// records the dns collector checks.
    pub fn dkim_domains(&self, target: &TargetId) -> Vec<String> {
        self.tx.borrow().get(target).map_or_else(Vec::new, |facts| {
            facts
                .iter()
                .filter(|(identity, f)| {
                    !identity.contains('@') && f.dkim.as_ref().is_some_and(|d| !d.tokens.is_empty())
                })
                .map(|(identity, _)| identity.clone())
                .collect()
        })
    }

    /// Replaces one field of every identity of `target`; identities left with no
    /// fact are dropped. Wakes the readers only when something changed; ignored for
    /// a target not added (or removed).
    fn replace<T: PartialEq>(
        &self,
        target: &TargetId,
        values: impl IntoIterator<Item = (String, T)>,
        field: fn(&mut IdentityFacts) -> &mut Option<T>,
    ) {
        self.replace_with(target, values, field, true);
    }

    /// [`Facts::replace`]; with `add` false, identities with no other fact are not
    /// added.
    fn replace_with<T: PartialEq>(
        &self,
        target: &TargetId,
        values: impl IntoIterator<Item = (String, T)>,
        field: fn(&mut IdentityFacts) -> &mut Option<T>,
        add: bool,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let live = self.live();
        if !live.contains(target) {
            return;
        }
        self.tx.send_if_modified(|all| {
            let before = all.get(target).map(Arc::clone).unwrap_or_default();
            // Built anew rather than cloned and edited: the identities' other facts
            // are kept, and no second copy of this field's values is made.
            let mut next = TargetFacts::new();
            for (identity, facts) in before.iter() {
                let mut others = facts.clone();
                *field(&mut others) = None;
                if !others.is_empty() {
                    next.insert(identity.clone(), others);
                }
            }
            for (identity, value) in values {
                if add {
                    *field(next.entry(identity).or_default()) = Some(value);
                } else if let Some(facts) = next.get_mut(&identity) {
                    *field(facts) = Some(value);
                }
            }
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

    /// A target went: its facts go with it, and later updates of it are ignored.
    pub fn remove_target(&self, target: &TargetId) {
        let mut live = self.live();
        live.remove(target);
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
        facts.add_target(&t);
        let domains = |pairs: &[(&str, &str)]| -> BTreeMap<String, MailFromAttributes> {
            pairs
                .iter()
                .map(|(a, b)| {
                    let attributes = MailFromAttributes {
                        domain: Some((*b).to_owned()),
                        status: Some(crate::model::MailFromStatus::Success),
                        behavior: crate::model::BehaviorOnMxFailure::UseDefaultValue,
                    };
                    ((*a).to_owned(), attributes)
                })
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

    #[test]
    fn a_dkim_origin_names_no_identity_of_its_own() {
        let facts = Facts::new();
        let rx = facts.subscribe();
        let t = TargetId::new("111111111111", "eu-west-1");
        facts.add_target(&t);
        let dkim = DkimAttributes {
            enabled: Some(true),
            status: crate::model::VerificationStatus::Success,
            tokens: vec!["t1".into()],
        };
        facts.set_dkim(&t, [("kept.example".to_owned(), dkim)]);
        facts.set_dkim_origins(
            &t,
            [
                ("kept.example".to_owned(), DkimOrigin::External),
                ("gone.example".to_owned(), DkimOrigin::External),
            ],
        );
        let all = rx.borrow();
        assert_eq!(all[&t].keys().collect::<Vec<_>>(), ["kept.example"]);
        assert_eq!(
            all[&t]["kept.example"].dkim_origin,
            Some(DkimOrigin::External)
        );
    }
}
