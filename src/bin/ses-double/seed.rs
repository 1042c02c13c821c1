//! The identities the double starts with in its home scope: `--seed demo` (every
//! MAIL FROM status x behavior, plus identities without a custom MAIL FROM) and
//! `--seed-count`'s generated domains for load tests. SESv2 answers from the same
//! identities; no reputation entities are seeded.

use std::collections::BTreeMap;

use crate::state::Identity;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Seed {
    Demo,
    None,
}

/// Every status x behavior with a custom MAIL FROM, plus identities without one.
pub(crate) fn demo(ids: &mut BTreeMap<String, Identity>) {
    for status in ["Pending", "Success", "Failed", "TemporaryFailure"] {
        for (behavior, short) in [("UseDefaultValue", "default"), ("RejectMessage", "reject")] {
            let name = format!("{}-{short}.example.com", status.to_ascii_lowercase());
            ids.insert(
                name.clone(),
                Identity {
                    mail_from_domain: Some(format!("bounce.{name}")),
                    status: Some(status.into()),
                    behavior: Some(behavior.into()),
                    dkim_enabled: Some(true),
                    dkim_status: Some(status.into()),
                    verification_status: Some("Success".into()),
                    ..Identity::default()
                },
            );
        }
    }
    ids.insert(
        "no-mail-from.example.com".into(),
        Identity {
            mail_from_domain: None,
            status: None,
            behavior: Some("UseDefaultValue".into()),
            dkim_enabled: Some(false),
            dkim_status: Some("NotStarted".into()),
            verification_status: Some("Success".into()),
            ..Identity::default()
        },
    );
    ids.insert(
        "ops@example.com".into(),
        Identity {
            mail_from_domain: None,
            status: None,
            behavior: Some("UseDefaultValue".into()),
            dkim_enabled: None,
            dkim_status: None,
            verification_status: Some("Pending".into()),
            ..Identity::default()
        },
    );
}

/// `count` generated domains (`id-00000.bench.example` ...), each with a custom MAIL
/// FROM in Success.
pub(crate) fn bench(ids: &mut BTreeMap<String, Identity>, count: usize) {
    for i in 0..count {
        let name = format!("id-{i:05}.bench.example");
        ids.insert(
            name.clone(),
            Identity {
                mail_from_domain: Some(format!("mail.{name}")),
                status: Some("Success".into()),
                behavior: Some("RejectMessage".into()),
                dkim_enabled: Some(true),
                dkim_status: Some("Success".into()),
                verification_status: Some("Success".into()),
                ..Identity::default()
            },
        );
    }
}
