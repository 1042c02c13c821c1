//! The `mail_from` collector (on by default): `GetIdentityMailFromDomainAttributes`
//! for every watched identity, its families, and the MAIL FROM domains it puts in
//! the identity facts for the dns collector.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::identity::{identity_collector, present, refreshed};
use crate::facts::Facts;
use crate::model::{
    BehaviorOnMxFailure, IdentityRecord, IdentityType, MailFromAttributes, MailFromStatus,
    Observation, Snapshot, TargetId,
};
use crate::render::{
    flag, ses_gauge, state_set, timestamp, Assembler, Derived, Exposition, Family, Renderer,
    Samples,
};

identity_collector! {
    MailFrom(MailFromAttributes): "mail_from", GetIdentityMailFromDomainAttributes via mail_from_attributes,
    logs "MAIL FROM state", on by default true,
    healthy |a| !a.configured() || a.status == Some(MailFromStatus::Success),
    help "The mail_from collector: GetIdentityMailFromDomainAttributes (on by default).",
    also {
        /// The MAIL FROM domains, for the dns collector. Names, not the records, so
        /// the dns collector never holds the records alive (that would make this
        /// collector copy them).
        fn facts(facts: &Facts, target: &TargetId, records: &Snapshot<MailFromAttributes>) {
            let domains: BTreeMap<String, String> = records
                .iter()
                .filter_map(|(id, record)| match &record.observation {
                    Observation::Present(a) => a.domain.as_deref().map(|d| (id.clone(), d.to_owned())),
                    _ => None,
                })
                .collect();
            facts.set_mail_from(target, domains);
        }
    },
}

/// What the collector records per identity.
type Record = IdentityRecord<MailFromAttributes>;

#[rustfmt::skip]
const FAMILIES: &[Family<Record>] = &[
    ses_gauge("aws_ses_identity_mail_from_status", &Derived { value: |r: &Record| present(r).filter(|a| a.configured()).map(MailFromAttributes::exported_status), write: status_line },
        "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Only for identities with a custom MAIL FROM domain."),
    ses_gauge("aws_ses_identity_mail_from_behavior_on_mx_failure", &Derived { value: |r: &Record| present(r).map(|a| a.behavior), write: behavior_line },
        "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set: the series of the current behavior is 1; Unknown when SES sent none or a value this build does not know."),
    ses_gauge("aws_ses_identity_mail_from_info", &Derived { value: |r: &Record| present(r).map(|a| a.domain.clone()), write: write_info },
        "The identity's type and custom MAIL FROM domain (empty when none is configured, or when SES reported a MAIL FROM status without naming the domain: see aws_ses_identity_mail_from_configured); always 1."),
    ses_gauge("aws_ses_identity_mail_from_configured", &Derived { value: |r: &Record| present(r).map(MailFromAttributes::configured), write: flag },
        "1 if the identity has a custom MAIL FROM domain (SES named one or reported a status for one), 0 if mail uses SES's default MAIL FROM."),
    ses_gauge("aws_ses_identity_exists", &Derived { value: |r: &Record| Some(matches!(r.observation, Observation::Present(_))), write: flag },
        "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this account and region, or is not visible to these credentials)."),
    ses_gauge("aws_ses_identity_rejected", &Derived { value: |r: &Record| matches!(r.observation, Observation::Rejected).then_some(()), write: one },
        "1 for an identity SES refuses as invalid (InvalidParameterValue when asked for it alone); its other series are absent and aws_ses_identity_exists is 0."),
    ses_gauge("aws_ses_identity_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp },
        "Unix time at which SES last answered GetIdentityMailFromDomainAttributes for this identity; a failed fetch leaves it unchanged."),
];

fn status_line(samples: &mut Samples<'_>, status: &MailFromStatus) {
    let all = &MailFromStatus::ALL;
    state_set(samples, "status", all, *status, MailFromStatus::as_str);
}

fn behavior_line(samples: &mut Samples<'_>, behavior: &BehaviorOnMxFailure) {
    let all = &BehaviorOnMxFailure::ALL;
    state_set(samples, "behavior", all, *behavior, BehaviorOnMxFailure::as_str);
}

/// An identity's sample of a family whose presence is the value (always 1).
fn one(samples: &mut Samples<'_>, _: &()) {
    samples.sample(&[], 1.0);
}

fn write_info(samples: &mut Samples<'_>, domain: &Option<String>) {
    let identity_type = samples.identity().map(IdentityType::of);
    let pairs = [
        ("identity_type", identity_type.map_or("", IdentityType::as_str)),
        ("mail_from_domain", domain.as_deref().unwrap_or("")),
    ];
    samples.sample(&pairs, 1.0);
}

/// The MAIL FROM exposition of one unlabelled snapshot, built from scratch (tests
/// and one-off renders).
pub fn exposition(snapshot: &Snapshot) -> Exposition {
    let part = Renderer::new(FAMILIES, String::new())
        .build(snapshot.iter().map(|(id, r)| (id.as_str(), r)));
    Assembler::default().assemble(&[&[Arc::new(part)]])
}

/// Renders every MAIL FROM family of a snapshot as text (tests and golden files).
pub fn render_identities(snapshot: &Snapshot) -> String {
    exposition(snapshot).text()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{target_labels, Piece};
    use flate2::Compression;
    use std::io::Read;
    use std::time::{Duration, UNIX_EPOCH};

    fn record(status: MailFromStatus, refreshed: u64) -> IdentityRecord {
        IdentityRecord {
            observation: Observation::Present(MailFromAttributes {
                domain: Some("mail.example.com".into()),
                status: Some(status),
                behavior: BehaviorOnMxFailure::RejectMessage,
            }),
            refreshed_at: UNIX_EPOCH + Duration::from_secs(refreshed),
        }
    }

    fn snapshot(n: usize, refreshed: u64) -> Snapshot {
        (0..n)
            .map(|i| {
                (
                    format!("id-{i:05}.example.com"),
                    record(MailFromStatus::Success, refreshed),
                )
            })
            .collect()
    }

    fn renderer() -> Renderer<Record> {
        Renderer::new(FAMILIES, String::new())
    }

    fn build(r: &mut Renderer<Record>, snap: &Snapshot) -> Exposition {
        Assembler::default().assemble(&[&[Arc::new(part(r, snap))]])
    }

    fn part(r: &mut Renderer<Record>, snap: &Snapshot) -> crate::render::Rendered {
        r.build(snap.iter().map(|(id, r)| (id.as_str(), r)))
    }

    fn tail() -> Piece {
        Piece::new("up 1\n", Compression::fast())
    }

    /// The whole gzip response, decoded by a decoder that checks CRC and length.
    fn gunzip(e: &Exposition, tail: &Piece) -> String {
        gunzip_tails(e, &[tail])
    }

    /// The whole gzip response with `tails`, decoded by a decoder that checks CRC
    /// and length.
    fn gunzip_tails(e: &Exposition, tails: &[&Piece]) -> String {
        let body: Vec<u8> = e.gzip_with(tails).iter().flat_map(|b| b.to_vec()).collect();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("valid gzip, CRC and length included");
        out
    }

    fn plain(e: &Exposition, tail: &Piece) -> String {
        let body: Vec<u8> = e
            .plain_with(&[tail])
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        String::from_utf8(body).expect("utf-8")
    }

    #[test]
    fn empty_snapshot_renders_nothing_and_still_gzips() {
        let e = exposition(&Snapshot::new());
        assert_eq!(e.text(), "");
        assert_eq!(gunzip(&e, &tail()), "up 1\n");
        assert_eq!(gunzip(&Exposition::default(), &tail()), "up 1\n");
    }

    #[test]
    fn gzip_is_one_member_equal_to_the_plain_body() {
        let snap = snapshot(1000, 1_700_000_000);
        let e = exposition(&snap);
        assert!(e.pieces() > 6 * 2, "split into pieces: {}", e.pieces());
        let t = tail();
        let text = gunzip(&e, &t);
        assert_eq!(text, plain(&e, &t));
        assert!(text.ends_with("up 1\n"));
        assert!(text.contains(
            "aws_ses_identity_mail_from_status{identity=\"id-00999.example.com\",status=\"Success\"} 1\n"
        ));
        // Two tails (the dns collector's and the health one) in the same member.
        let dns = Piece::new("dns 1\n", Compression::fast());
        let two = gunzip_tails(&e, &[&dns, &t]);
        assert!(two.ends_with("dns 1\nup 1\n"));
        // One member: a decoder that stops after the first member sees everything.
        let body: Vec<u8> = e.gzip_with(&[&t]).iter().flat_map(|b| b.to_vec()).collect();
        let mut d = flate2::bufread::GzDecoder::new(&body[..]);
        let mut first = String::new();
        d.read_to_string(&mut first).expect("first member");
        assert_eq!(first, text);
        assert!(d.into_inner().is_empty(), "nothing after the first member");
    }

    #[test]
    fn an_unchanged_snapshot_renders_nothing_again() {
        let mut r = renderer();
        let snap = snapshot(2000, 1_700_000_000);
        let first = build(&mut r, &snap);
        let headers = first
            .plain
            .iter()
            .filter(|p| p.starts_with(b"# HELP"))
            .count();
        assert_eq!(r.rendered_last, first.pieces() - headers);
        let second = build(&mut r, &snap);
        assert_eq!(r.rendered_last, 0);
        assert_eq!(second.text(), first.text());
        // The pieces are shared, not copied (headers come from each assembler).
        assert!(first
            .plain
            .iter()
            .zip(&second.plain)
            .filter(|(a, _)| !a.starts_with(b"# HELP"))
            .all(|(a, b)| a.as_ptr() == b.as_ptr()));
    }

    #[test]
    fn a_new_refresh_time_re_renders_only_that_family() {
        let mut r = renderer();
        let before = build(&mut r, &snapshot(2000, 1_700_000_000));
        let after = build(&mut r, &snapshot(2000, 1_700_000_060));
        let refresh_pieces = after
            .plain
            .iter()
            .filter(|p| p.starts_with(b"aws_ses_identity_last_refresh_timestamp_seconds{"))
            .count();
        assert_eq!(r.rendered_last, refresh_pieces);
        assert!(refresh_pieces < after.pieces() / 4);
        assert_ne!(before.text(), after.text());
    }

    #[test]
    fn reused_pieces_give_the_same_body_as_a_fresh_render() {
        let mut r = renderer();
        let mut snap = snapshot(3000, 1_700_000_000);
        let statuses = MailFromStatus::ALL;
        build(&mut r, &snap);
        for round in 0..8u64 {
            // Change a few statuses, drop and add identities, move some refresh times.
            let names: Vec<String> = snap.keys().cloned().collect();
            for (i, name) in names
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7 + round as usize).is_multiple_of(97))
            {
                let rec = record(statuses[(i + round as usize) % 5], 1_700_000_000 + round);
                snap.insert(name.clone(), rec);
            }
            snap.remove(&names[(round as usize * 31) % names.len()]);
            snap.insert(
                format!("new-{round}.example.com"),
                record(MailFromStatus::Failed, round),
            );
            snap.insert(
                format!("gone-{round}@example.com"),
                IdentityRecord {
                    observation: Observation::Missing,
                    refreshed_at: UNIX_EPOCH,
                },
            );
            let incremental = build(&mut r, &snap);
            let fresh = exposition(&snap);
            assert_eq!(incremental.text(), fresh.text(), "round {round}");
            assert_eq!(
                gunzip(&incremental, &tail()),
                plain(&fresh, &tail()),
                "round {round}"
            );
            assert!(
                r.rendered_last < fresh.pieces(),
                "round {round}: some pieces reused"
            );
        }
    }

    #[test]
    fn targets_share_one_header_per_family_and_carry_their_labels() {
        let snap = snapshot(3, 1_700_000_000);
        let mut a = Renderer::new(FAMILIES, target_labels("111111111111", "eu-west-1"));
        let mut b = Renderer::new(FAMILIES, target_labels("222222222222", "us-east-1"));
        let parts = [Arc::new(part(&mut a, &snap)), Arc::new(part(&mut b, &snap))];
        let e = Assembler::default().assemble(&[&parts]);
        let text = e.text();
        assert_eq!(
            text.matches("# TYPE aws_ses_identity_mail_from_status gauge")
                .count(),
            1
        );
        assert!(text.contains("aws_ses_identity_mail_from_status{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",identity=\"id-00000.example.com\",status=\"Success\"} 1\n"));
        assert!(text.contains("aws_ses_identity_exists{aws_account_id=\"222222222222\",aws_region=\"us-east-1\",identity=\"id-00002.example.com\"} 1\n"));
        // One family's samples stay together: target b's status lines come before
        // any line of the next family.
        let last_status = text.rfind("aws_ses_identity_mail_from_status{").unwrap();
        let first_behavior = text
            .find("aws_ses_identity_mail_from_behavior_on_mx_failure{")
            .unwrap();
        assert!(last_status < first_behavior);
        assert_eq!(gunzip(&e, &tail()), plain(&e, &tail()));
    }
}

