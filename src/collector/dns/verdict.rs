//! The dns collector's verdicts, pure: whether a MAIL FROM domain's MX records name
//! the region's SES feedback host and whether its SPF record includes SES; the state
//! of each Easy DKIM CNAME record; a sending domain's DMARC policy as RFC 7489 finds
//! it; and what receivers enforcing DMARC do with an identity's mail.
//!
//! The SPF evaluation itself (`check_host()`) and the parse of a DMARC record are
//! mail-auth's; the organizational domain is the `psl` crate's. What is ours: which
//! record applies (RFC 7489 section 6.6.3: exactly one `v=DMARC1` record, else none),
//! the `pct` tag (RFC 7489 section 6.6.4; mail-auth follows RFC 9989, which dropped
//! it), two SPF records as a permerror (RFC 7208 section 4.5; mail-auth takes the
//! first), and the alignment of what SES sends.

use std::net::IpAddr;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Alignment, Dmarc, Policy};
use mail_auth::spf::{Mechanism, Qualifier, Spf};

use crate::model::{
    BehaviorOnMxFailure, RecordState, DmarcPolicy, DmarcRecordState, DmarcVerdict,
    MailFromStatus, SpfStatus,
};

/// The domain whose SPF record lists SES's sending addresses; the domain SES tells
/// customers to include.
pub const SES_SPF_DOMAIN: &str = "amazonses.com";

/// The MX host SES wants for a MAIL FROM domain in `region`.
pub fn expected_mx(region: &str) -> String {
    format!("feedback-smtp.{region}.amazonses.com")
}

/// Whether one of the MX exchanges is the region's SES feedback host (names compare
/// case-insensitively, with or without the trailing dot).
pub fn mx_correct(exchanges: &[String], region: &str) -> bool {
    let want = expected_mx(region);
    exchanges
        .iter()
        .any(|e| e.trim_end_matches('.').eq_ignore_ascii_case(&want))
}

/// Whether the TXT records hold exactly one SPF record (two are an error, RFC 7208
/// 4.5) and it has the term `include:amazonses.com` with a pass qualifier.
pub fn spf_correct(txts: &[String]) -> bool {
    let spf = spf_records(txts);
    let [record] = spf.as_slice() else {
        return false;
    };
    record.split_ascii_whitespace().skip(1).any(|term| {
        let term = term.strip_prefix('+').unwrap_or(term);
        term.eq_ignore_ascii_case("include:amazonses.com")
    })
}

/// The TXT records that are SPF records (`v=spf1` as their first term).
fn spf_records(txts: &[String]) -> Vec<&String> {
    txts.iter()
        .filter(|t| {
            let mut terms = t.split_ascii_whitespace();
            terms
                .next()
                .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        })
        .collect()
}

/// Whether the domain publishes more than one SPF record: a permerror before any
/// evaluation (RFC 7208 section 4.5).
pub fn spf_records_conflict(txts: &[String]) -> bool {
    spf_records(txts).len() > 1
}

/// An address SES sends from: the first `ip4:` network of [`SES_SPF_DOMAIN`]'s SPF
/// record with a pass qualifier. Evaluating a MAIL FROM domain's SPF record for it is
/// what a receiver does with SES's mail.
pub fn ses_sending_address(txts: &[String]) -> Option<IpAddr> {
    spf_records(txts).into_iter().find_map(|record| {
        let spf = Spf::parse(record.as_bytes()).ok()?;
        spf.directives.iter().find_map(|d| match d.mechanism {
            Mechanism::Ip4 { addr, .. } if d.qualifier == Qualifier::Pass => {
                Some(IpAddr::V4(addr))
            }
            _ => None,
        })
    })
}

/// A sending domain's DMARC record, as a receiver applies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DmarcRecord {
    /// The domain whose `_dmarc` record it is: the sending domain, or its
    /// organizational domain.
    pub domain: String,
    pub p: DmarcPolicy,
    /// `sp=`, or `p` when left out.
    pub sp: DmarcPolicy,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    /// `pct=`, 100 when left out or not a number from 0 to 100.
    pub pct: u8,
}

/// What the TXT records at `_dmarc.<domain>` say. `None`: no DMARC record there (the
/// next place to look, or absent). RFC 7489 section 6.6.3: records not starting with
/// `v=DMARC1` are ignored, and more than one that does is no policy at all.
pub fn dmarc_record(
    domain: &str,
    txts: &[String],
) -> Option<Result<DmarcRecord, DmarcRecordState>> {
    let records: Vec<&String> = txts
        .iter()
        .filter(|t| tags(t).next().is_some_and(|(k, v)| k == "v" && v == "DMARC1"))
        .collect();
    let [record] = records.as_slice() else {
        return (records.len() > 1).then_some(Err(DmarcRecordState::Unparseable));
    };
    let policy = |p: Policy| match p {
        Policy::Quarantine => Some(DmarcPolicy::Quarantine),
        Policy::Reject => Some(DmarcPolicy::Reject),
        Policy::None => Some(DmarcPolicy::None),
        Policy::Unspecified => None,
    };
    let (p, sp, adkim_strict, aspf_strict) = match Dmarc::parse(record.as_bytes()) {
        Ok(parsed) => (
            policy(parsed.p),
            policy(parsed.sp),
            parsed.adkim == Alignment::Strict,
            parsed.aspf == Alignment::Strict,
        ),
        // mail-auth refuses the whole record for one tag it cannot read (say
        // aspf=relaxed); receivers ignore such a tag and apply the rest (RFC 7489
        // section 6.3). Read the tags the verdict needs the same way; a p= that is
        // there but not a policy leaves no policy to apply.
        Err(_) => {
            let tag = |name: &str| tags(record).find(|(k, _)| k == name).map(|(_, v)| v.to_ascii_lowercase());
            let read = |v: Option<String>| -> Result<Option<DmarcPolicy>, ()> {
                match v.as_deref() {
                    None => Ok(None),
                    Some("none") => Ok(Some(DmarcPolicy::None)),
                    Some("quarantine") => Ok(Some(DmarcPolicy::Quarantine)),
                    Some("reject") => Ok(Some(DmarcPolicy::Reject)),
                    Some(_) => Err(()),
                }
            };
            let Ok(p) = read(tag("p")) else {
                return Some(Err(DmarcRecordState::Unparseable));
            };
            (
                p,
                read(tag("sp")).ok().flatten(),
                tag("adkim").as_deref() == Some("s"),
                tag("aspf").as_deref() == Some("s"),
            )
        }
    };
    // A record without p= is read as p=none (RFC 7489 section 6.6.3 with a rua, and
    // RFC 9989 always): receivers take no action on its failures.
    let p = p.unwrap_or(DmarcPolicy::None);
    Some(Ok(DmarcRecord {
        domain: domain.to_owned(),
        p,
        sp: sp.unwrap_or(p),
        adkim_strict,
        aspf_strict,
        pct: pct(record),
    }))
}

/// The tag-value pairs of a DMARC record (RFC 7489 section 6.4), names lower-cased,
/// values trimmed.
fn tags(record: &str) -> impl Iterator<Item = (String, &str)> {
    record.split(';').filter_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        Some((k.trim().to_ascii_lowercase(), v.trim()))
    })
}

/// The `pct` tag of a DMARC record (mail-auth reads RFC 9989 records, which have
/// none): the tag-value list of RFC 7489 section 6.4, 100 when absent or invalid.
fn pct(record: &str) -> u8 {
    tags(record)
        .find(|(k, _)| k == "pct")
        .and_then(|(_, v)| v.parse::<u8>().ok())
        .filter(|v| *v <= 100)
        .unwrap_or(100)
}

/// The organizational domain of `domain` (RFC 7489 section 3.2: one label below its
/// public suffix, from the Public Suffix List); `None` for a public suffix itself.
pub fn organizational_domain(domain: &str) -> Option<String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&domain).map(str::to_owned)
}

/// The parent domains of `domain`, nearest first, down to its organizational domain
/// (none for the organizational domain itself or a public suffix).
pub fn parent_domains(domain: &str) -> Vec<String> {
    let Some(org) = organizational_domain(domain) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = domain.trim_end_matches('.').to_ascii_lowercase();
    while at != org {
        let Some((_, parent)) = at.split_once('.') else {
            break;
        };
        at = parent.to_owned();
        out.push(at.clone());
    }
    out
}

/// The domain mail is sent from for an identity: a domain identity itself, an e-mail
/// address identity's domain.
pub fn from_domain(identity: &str) -> String {
    identity
        .rsplit_once('@')
        .map_or(identity, |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether `a` aligns with the From domain `from`: the same name (strict), or the
/// same organizational domain (relaxed).
pub fn aligned(a: &str, from: &str, strict: bool) -> bool {
    let (a, from) = (a.to_ascii_lowercase(), from.to_ascii_lowercase());
    if a == from {
        return true;
    }
    !strict && organizational_domain(&a).is_some_and(|o| Some(o) == organizational_domain(&from))
}

/// What is known of how SES sends one identity's mail, for [`dmarc_verdict`]: `None`
/// for a fact not known (its collector is off or has not answered, or DNS has not).
#[derive(Debug, Clone, Default)]
pub struct SendingFacts<'a> {
    /// The From domain.
    pub from: &'a str,
    /// Whether a custom MAIL FROM is set (`Some(false)`: SES's own amazonses.com), its
    /// domain, status and behaviour.
    pub mail_from_configured: Option<bool>,
    pub mail_from_domain: Option<&'a str>,
    pub mail_from_status: Option<MailFromStatus>,
    pub behavior: Option<BehaviorOnMxFailure>,
    /// SPF's evaluation of the MAIL FROM domain for SES's address.
    pub spf: Option<SpfStatus>,
    /// Whether SES signs with Easy DKIM that verified (`DkimEnabled` and `Success`).
    pub dkim_signing: Option<bool>,
    /// The domain it signs with (`d=`): the identity's, or the domain identity's it
    /// inherits DKIM from; the From domain when `None`.
    pub dkim_domain: Option<&'a str>,
    /// Whether every Easy DKIM record of that domain is in place (`None`: not known).
    pub dkim_records: Option<bool>,
    /// The DMARC record (`Some(None)`: DNS answered that there is none).
    pub dmarc: Option<Option<&'a DmarcRecord>>,
}

/// What receivers enforcing DMARC do with this identity's mail; `None` when a fact it
/// depends on is not known. DMARC passes when SPF or DKIM passes for a domain aligned
/// with the From domain (RFC 7489 section 3.1): SES's SPF passes aligned only through a
/// custom MAIL FROM in `Success` whose record authorizes SES (otherwise SES's MAIL FROM
/// is amazonses.com), and Easy DKIM signs with the identity's domain.
pub fn dmarc_verdict(f: &SendingFacts<'_>) -> Option<DmarcVerdict> {
    let record = f.dmarc?;
    let aspf_strict = record.is_some_and(|r| r.aspf_strict);
    let adkim_strict = record.is_some_and(|r| r.adkim_strict);
    // SPF: known aligned, known not, or not known.
    let spf = match f.mail_from_configured {
        Some(false) => Some(false),
        None => None,
        Some(true) => match (f.mail_from_status, f.mail_from_domain) {
            (Some(MailFromStatus::Success), Some(domain)) => f
                .spf
                .map(|s| s == SpfStatus::Pass && aligned(domain, f.from, aspf_strict)),
            (Some(MailFromStatus::Success), None) => None,
            (Some(MailFromStatus::Unknown), _) | (None, _) => None,
            // Not in Success: with UseDefaultValue SES sends with its own MAIL FROM,
            // which never aligns; with RejectMessage it refuses the mail itself, so
            // receivers never see it (the MAIL FROM alerts page for that): no verdict.
            (Some(_), _) => match f.behavior {
                Some(BehaviorOnMxFailure::UseDefaultValue) => Some(false),
                _ => return None,
            },
        },
    };
    // Easy DKIM aligns when SES signs with verified DKIM whose records are in place,
    // with d= the From domain (or, relaxed, its organizational domain).
    let dkim = match (f.dkim_signing, f.dkim_records) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(aligned(f.dkim_domain.unwrap_or(f.from), f.from, adkim_strict)),
        _ => None,
    };
    if spf == Some(true) || dkim == Some(true) {
        return Some(DmarcVerdict::Aligned);
    }
    // Not aligned as far as is known: only a known "neither" decides the policy.
    if spf.is_none() || dkim.is_none() {
        return None;
    }
    let Some(record) = record else {
        return Some(DmarcVerdict::None);
    };
    // The record at the From domain applies p; one found at the organizational domain
    // applies sp to a subdomain.
    let policy = if record.domain.eq_ignore_ascii_case(f.from) {
        record.p
    } else {
        record.sp
    };
    // pct (RFC 7489 section 6.6.4): the mail not sampled gets the next policy down,
    // so pct=0 makes reject a quarantine and quarantine nothing.
    Some(match (policy, record.pct) {
        (DmarcPolicy::None, _) => DmarcVerdict::None,
        (DmarcPolicy::Quarantine, 0) => DmarcVerdict::None,
        (DmarcPolicy::Quarantine, _) => DmarcVerdict::Quarantine,
        (DmarcPolicy::Reject, 0) => DmarcVerdict::Quarantine,
        (DmarcPolicy::Reject, _) => DmarcVerdict::Reject,
    })
}

/// One Easy DKIM record `<token>._domainkey.<domain>` as DNS answered: its CNAME
/// targets, or the lookup's definitive "none". It is correct when it points at
/// `<token>.<zone>`; with the signing zone not known (SES names it only in SESv2's
/// `GetEmailIdentity`, and a replicated identity's is its primary region's), any
/// target whose first label is the token.
pub fn dkim_record_state(
    token: &str,
    targets: Option<&[String]>,
    zone: Option<&str>,
) -> RecordState {
    let Some(targets) = targets.filter(|t| !t.is_empty()) else {
        return RecordState::Missing;
    };
    let right = |target: &String| {
        let target = target.trim_end_matches('.');
        match zone {
            Some(zone) => target.eq_ignore_ascii_case(&format!("{token}.{}", zone.trim_end_matches('.'))),
            None => target
                .split_once('.')
                .is_some_and(|(first, rest)| first.eq_ignore_ascii_case(token) && !rest.is_empty()),
        }
    };
    if targets.iter().any(right) {
        RecordState::Correct
    } else {
        RecordState::Elsewhere
    }
}

/// Whether TXT records at a DKIM selector publish a key receivers can verify with
/// (RFC 6376 section 3.6.1; an empty `p=` is a revoked key): mail-auth's parser reads
/// the record and the key.
pub fn dkim_key(txts: &[String]) -> bool {
    txts.iter()
        .any(|t| mail_auth::common::verify::DomainKey::parse(t.as_bytes()).is_ok())
}

/// A legacy verification record `_amazonses.<domain>` as DNS answered: correct when
/// one of its TXT records is the verification token.
pub fn legacy_record_state(token: &str, txts: Option<&[String]>) -> RecordState {
    match txts.filter(|t| !t.is_empty()) {
        None => RecordState::Missing,
        Some(txts) if txts.iter().any(|t| t.trim() == token) => RecordState::Correct,
        Some(_) => RecordState::Elsewhere,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Owned strings, as the resolver returns them.
    pub(in crate::collector::dns) fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn mx_must_name_the_regions_feedback_host() {
        assert!(mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(mx_correct(
            &s(&["mx.example.com", "FEEDBACK-SMTP.us-east-1.amazonses.com."]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.eu-west-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com.evil.example"]),
            "us-east-1"
        ));
        assert!(!mx_correct(&[], "us-east-1"));
    }

    #[test]
    fn spf_needs_one_record_including_amazonses_with_pass() {
        assert!(spf_correct(&s(&["v=spf1 include:amazonses.com ~all"])));
        assert!(spf_correct(&s(&[
            "google-site-verification=x",
            "V=SPF1 +include:AmazonSES.com -all"
        ])));
        assert!(!spf_correct(&s(&["v=spf1 include:_spf.google.com ~all"])));
        assert!(!spf_correct(&s(&["v=spf1 -include:amazonses.com ~all"])));
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com.evil ~all"
        ])));
        assert!(!spf_correct(&s(&["v=spf10 include:amazonses.com"])));
        // Two SPF records are a permanent error: SPF fails for everyone.
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com ~all",
            "v=spf1 -all"
        ])));
        assert!(!spf_correct(&[]));
    }

    fn record(domain: &str, txt: &str) -> DmarcRecord {
        match dmarc_record(domain, &s(&[txt])) {
            Some(Ok(r)) => r,
            other => panic!("{txt}: {other:?}"),
        }
    }

    #[test]
    fn a_dmarc_record_is_read_with_its_defaults_and_pct() {
        let r = record("example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com");
        assert_eq!((r.p, r.sp, r.pct), (DmarcPolicy::Reject, DmarcPolicy::Reject, 100));
        assert!(!r.aspf_strict && !r.adkim_strict);
        let r = record("example.com", "v=DMARC1; p=quarantine; sp=none; aspf=s; adkim=s; pct=0");
        assert_eq!((r.p, r.sp, r.pct), (DmarcPolicy::Quarantine, DmarcPolicy::None, 0));
        assert!(r.aspf_strict && r.adkim_strict);
        // pct out of range or not a number: 100.
        assert_eq!(record("example.com", "v=DMARC1; p=reject; pct=150").pct, 100);
        assert_eq!(record("example.com", "v=DMARC1; p=reject; pct=x").pct, 100);
        // No p: no action (none).
        assert_eq!(record("example.com", "v=DMARC1; rua=mailto:d@example.com").p, DmarcPolicy::None);
        // Not DMARC records: nothing here, look further.
        assert_eq!(dmarc_record("example.com", &s(&["v=spf1 -all", "hello"])), None);
        assert_eq!(dmarc_record("example.com", &[]), None);
        // A tag mail-auth cannot read is ignored, as receivers do; a p= that is not a
        // policy leaves none.
        let r = record("example.com", "v=DMARC1; p=reject; aspf=relaxed; pct=50");
        assert_eq!((r.p, r.sp, r.pct, r.aspf_strict), (DmarcPolicy::Reject, DmarcPolicy::Reject, 50, false));
        assert_eq!(
            dmarc_record("example.com", &s(&["v=DMARC1; p=block"])),
            Some(Err(DmarcRecordState::Unparseable))
        );
        // Not v=DMARC1 exactly: not a DMARC record.
        assert_eq!(dmarc_record("example.com", &s(&["v=DMARC10; p=reject"])), None);
        // Two DMARC records: no policy (RFC 7489 6.6.3), told apart from none.
        assert_eq!(
            dmarc_record("example.com", &s(&["v=DMARC1; p=reject", "v=DMARC1; p=none"])),
            Some(Err(DmarcRecordState::Unparseable))
        );
    }

    #[test]
    fn the_organizational_domain_comes_from_the_public_suffix_list() {
        assert_eq!(organizational_domain("mail.example.co.uk").as_deref(), Some("example.co.uk"));
        assert_eq!(organizational_domain("a.b.example.com.").as_deref(), Some("example.com"));
        assert_eq!(organizational_domain("example.com").as_deref(), Some("example.com"));
        assert_eq!(organizational_domain("co.uk"), None);
        assert!(aligned("bounce.example.com", "example.com", false));
        assert!(!aligned("bounce.example.com", "example.com", true));
        assert!(aligned("example.com", "EXAMPLE.com", true));
        assert!(!aligned("bounce.example.net", "example.com", false));
        assert_eq!(from_domain("Ops@Mail.Example.com"), "mail.example.com");
        assert_eq!(from_domain("example.com"), "example.com");
        assert_eq!(parent_domains("a.b.example.co.uk"), ["b.example.co.uk", "example.co.uk"]);
        assert!(parent_domains("example.com").is_empty());
    }

    /// A domain identity with a failed custom MAIL FROM, UseDefaultValue, DKIM not
    /// signing, and the DMARC record given.
    fn failed_mail_from<'a>(dmarc: Option<&'a DmarcRecord>) -> SendingFacts<'a> {
        SendingFacts {
            from: "example.com",
            mail_from_configured: Some(true),
            mail_from_domain: Some("bounce.example.com"),
            mail_from_status: Some(MailFromStatus::Failed),
            behavior: Some(BehaviorOnMxFailure::UseDefaultValue),
            spf: Some(SpfStatus::Pass),
            dkim_signing: Some(false),
            dkim_domain: None,
            dkim_records: None,
            dmarc: Some(dmarc),
        }
    }

    #[test]
    fn receivers_reject_when_neither_spf_nor_dkim_aligns_under_p_reject() {
        let reject = record("example.com", "v=DMARC1; p=reject");
        let f = failed_mail_from(Some(&reject));
        assert_eq!(dmarc_verdict(&f), Some(DmarcVerdict::Reject));
        // Verified DKIM with its records in place aligns: DMARC passes.
        let signed = SendingFacts { dkim_signing: Some(true), dkim_records: Some(true), ..f.clone() };
        assert_eq!(dmarc_verdict(&signed), Some(DmarcVerdict::Aligned));
        // Its records not looked up yet: not known.
        let unseen = SendingFacts { dkim_records: None, ..signed.clone() };
        assert_eq!(dmarc_verdict(&unseen), None);
        // Signed by the parent domain's DKIM: aligned when relaxed only.
        let sub = SendingFacts { from: "mail.example.com", dkim_domain: Some("example.com"), ..signed.clone() };
        assert_eq!(dmarc_verdict(&sub), Some(DmarcVerdict::Aligned));
        let strict_dkim = record("example.com", "v=DMARC1; p=reject; adkim=s");
        let sub_strict = SendingFacts { dmarc: Some(Some(&strict_dkim)), ..sub.clone() };
        assert_eq!(dmarc_verdict(&sub_strict), Some(DmarcVerdict::Reject));
        // MAIL FROM failed with RejectMessage: SES refuses the mail itself, receivers
        // never judge it; an unknown status or behaviour is not known.
        let refused = SendingFacts { behavior: Some(BehaviorOnMxFailure::RejectMessage), ..f.clone() };
        assert_eq!(dmarc_verdict(&refused), None);
        let unknown = SendingFacts { mail_from_status: Some(MailFromStatus::Unknown), ..f.clone() };
        assert_eq!(dmarc_verdict(&unknown), None);
        let unknown = SendingFacts { behavior: Some(BehaviorOnMxFailure::Unknown), ..f.clone() };
        assert_eq!(dmarc_verdict(&unknown), None);
        // ... unless its records are gone.
        let gone = SendingFacts { dkim_records: Some(false), ..signed.clone() };
        assert_eq!(dmarc_verdict(&gone), Some(DmarcVerdict::Reject));
        // The custom MAIL FROM in Success with SPF passing aligns (relaxed).
        let ok = SendingFacts { mail_from_status: Some(MailFromStatus::Success), ..f.clone() };
        assert_eq!(dmarc_verdict(&ok), Some(DmarcVerdict::Aligned));
        // But not under aspf=s: bounce.example.com is not example.com.
        let strict = record("example.com", "v=DMARC1; p=reject; aspf=s");
        let ok_strict = SendingFacts { dmarc: Some(Some(&strict)), ..ok.clone() };
        assert_eq!(dmarc_verdict(&ok_strict), Some(DmarcVerdict::Reject));
        // SPF that does not authorize SES does not pass.
        let not_authorized = SendingFacts { spf: Some(SpfStatus::PermError), ..ok.clone() };
        assert_eq!(dmarc_verdict(&not_authorized), Some(DmarcVerdict::Reject));
        // Quarantine; pct=0 takes each policy one step down.
        let q = record("example.com", "v=DMARC1; p=quarantine");
        assert_eq!(dmarc_verdict(&failed_mail_from(Some(&q))), Some(DmarcVerdict::Quarantine));
        let r0 = record("example.com", "v=DMARC1; p=reject; pct=0");
        assert_eq!(dmarc_verdict(&failed_mail_from(Some(&r0))), Some(DmarcVerdict::Quarantine));
        let q0 = record("example.com", "v=DMARC1; p=quarantine; pct=0");
        assert_eq!(dmarc_verdict(&failed_mail_from(Some(&q0))), Some(DmarcVerdict::None));
        let r50 = record("example.com", "v=DMARC1; p=reject; pct=50");
        assert_eq!(dmarc_verdict(&failed_mail_from(Some(&r50))), Some(DmarcVerdict::Reject));
        // p=none, or no record: delivered as far as DMARC goes.
        let none = record("example.com", "v=DMARC1; p=none");
        assert_eq!(dmarc_verdict(&failed_mail_from(Some(&none))), Some(DmarcVerdict::None));
        assert_eq!(dmarc_verdict(&failed_mail_from(None)), Some(DmarcVerdict::None));
    }

    #[test]
    fn a_subdomain_gets_sp_from_its_organizational_domains_record() {
        let org = record("example.com", "v=DMARC1; p=reject; sp=quarantine");
        let sub = SendingFacts { from: "mail.example.com", ..failed_mail_from(Some(&org)) };
        assert_eq!(dmarc_verdict(&sub), Some(DmarcVerdict::Quarantine));
        // The record at the From domain itself applies p.
        let own = record("mail.example.com", "v=DMARC1; p=reject; sp=none");
        let sub = SendingFacts { from: "mail.example.com", ..failed_mail_from(Some(&own)) };
        assert_eq!(dmarc_verdict(&sub), Some(DmarcVerdict::Reject));
    }

    #[test]
    fn a_verdict_is_absent_while_a_fact_it_needs_is_not_known() {
        let reject = record("example.com", "v=DMARC1; p=reject");
        let f = failed_mail_from(Some(&reject));
        // DMARC not looked up yet.
        assert_eq!(dmarc_verdict(&SendingFacts { dmarc: None, ..f.clone() }), None);
        // The dkim collector off: DKIM may align, so no verdict unless SPF does.
        let no_dkim = SendingFacts { dkim_signing: None, ..f.clone() };
        assert_eq!(dmarc_verdict(&no_dkim), None);
        let spf_ok = SendingFacts { mail_from_status: Some(MailFromStatus::Success), ..no_dkim.clone() };
        assert_eq!(dmarc_verdict(&spf_ok), Some(DmarcVerdict::Aligned));
        // SPF not evaluated yet, MAIL FROM in Success: not known.
        let spf_unknown = SendingFacts { spf: None, ..spf_ok.clone() };
        let spf_unknown = SendingFacts { dkim_records: Some(true), ..spf_unknown };
        assert_eq!(dmarc_verdict(&SendingFacts { dkim_signing: Some(false), ..spf_unknown }), None);
        // No custom MAIL FROM: SES's amazonses.com never aligns.
        let default = SendingFacts { mail_from_configured: Some(false), mail_from_domain: None, mail_from_status: None, ..f.clone() };
        assert_eq!(dmarc_verdict(&default), Some(DmarcVerdict::Reject));
    }

    #[test]
    fn a_dkim_record_is_correct_only_when_it_points_at_its_token() {
        let t = "abcdef123";
        let targets = s(&["abcdef123.dkim.amazonses.com."]);
        assert_eq!(dkim_record_state(t, Some(&targets), None), RecordState::Correct);
        assert_eq!(dkim_record_state(t, Some(&targets), Some("dkim.amazonses.com")), RecordState::Correct);
        assert_eq!(dkim_record_state(t, Some(&targets), Some("dkim.af-south-1.amazonses.com")), RecordState::Elsewhere);
        assert_eq!(dkim_record_state(t, Some(&s(&["other.dkim.amazonses.com"])), None), RecordState::Elsewhere);
        assert_eq!(dkim_record_state(t, Some(&s(&["abcdef123"])), None), RecordState::Elsewhere);
        assert_eq!(dkim_record_state(t, None, None), RecordState::Missing);
        assert_eq!(dkim_record_state(t, Some(&[]), None), RecordState::Missing);
    }

    /// A 2048-bit RSA public key (SubjectPublicKeyInfo, base64), as a DKIM record's p=.
    pub(in crate::collector::dns) const DKIM_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0dAd4fgYtFPM5C6QoSeb0QTc8axwIPvKhlVVlyHUd9v6Hgyzlu3/futM4SNskldM452exmSVl1Ls4PXpBO6tUxKq6Bb9/6NZJVnH+GkepvK2srfFd/fWK1esSBguQJY1nKXIiZXd34PMdzio6+NNQw6bY4EAbqeYKmsxWOCTq/187Z9OcqWk/0pXyHG/RZz90s4r9ss/1RzPtXvkZMyPLGhcutekE79WYmE9sXT+2DXBPHTgCtGXmukWmuKH5FHnye0uVRDtQYBFhigQhKnRmYhASthXWtn2GQBn04Y2sM1/GHhmgM5jE8wlkkwMi26/TZ3E2Qsqx2j/ZtutGnR4qwIDAQAB";

    #[test]
    fn a_published_dkim_key_counts_and_a_revoked_or_broken_one_does_not() {
        assert!(dkim_key(&s(&[&format!("v=DKIM1; k=rsa; p={DKIM_KEY}")])));
        assert!(dkim_key(&s(&["hello", &format!("v=DKIM1; p={DKIM_KEY}")])));
        assert!(!dkim_key(&s(&["v=DKIM1; k=rsa; p="])), "revoked");
        assert!(!dkim_key(&s(&["v=DKIM1; k=rsa; p=bm90IGEga2V5"])), "not a key");
        assert!(!dkim_key(&s(&["v=spf1 -all"])));
        assert!(!dkim_key(&[]));
    }

    #[test]
    fn a_legacy_record_is_correct_when_it_holds_the_token() {
        let t = "pmBGN/7MjnfhTKUZ06Enqq1PeGUaOkw8lGhcfwefcHU=";
        assert_eq!(legacy_record_state(t, Some(&s(&[t]))), RecordState::Correct);
        assert_eq!(legacy_record_state(t, Some(&s(&["other", t]))), RecordState::Correct);
        assert_eq!(legacy_record_state(t, Some(&s(&["other"]))), RecordState::Elsewhere);
        assert_eq!(legacy_record_state(t, None), RecordState::Missing);
    }

    #[test]
    fn ses_sending_address_is_the_first_passing_ip4_network_of_its_spf_record() {
        let txts = s(&["google-site-verification=x", "v=spf1 -ip4:10.0.0.0/8 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all"]);
        assert_eq!(ses_sending_address(&txts), Some("199.255.192.0".parse().unwrap()));
        assert_eq!(ses_sending_address(&s(&["v=spf1 include:x.example -all"])), None);
        assert_eq!(ses_sending_address(&[]), None);
        assert!(spf_records_conflict(&s(&["v=spf1 -all", "v=spf1 ~all"])));
        assert!(!spf_records_conflict(&s(&["v=spf1 -all", "x"])));
    }
}
