//! "DNS as receivers see it", through the real exporter binary against the SES double
//! (MAIL FROM and Easy DKIM attributes, DKIM tokens) and a real authoritative DNS
//! server on loopback (tests/dns/server.py): Easy DKIM CNAME records checked while SES
//! says Success, SPF evaluated for SES's sending address (11 DNS-querying terms, or 3
//! void lookups, are a permerror), each From domain's DMARC record found at the domain or its
//! organizational domain, and one verdict per identity of what receivers enforcing
//! DMARC do with its mail. No query leaves the machine: the exporter is given only
//! that server, which also serves amazonses.com's SPF record.

mod common;

use std::time::Duration;

use common::dns::DnsServer;
use common::{promtool_check, wait_for, Double, Exporter, Metrics};

const MX_OK: &str = "10 feedback-smtp.us-east-1.amazonses.com";
/// SES's sending networks, as amazonses.com's SPF record lists them (shortened).
const SES_SPF: &str = "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all";
const SPF_OK: &str = "v=spf1 include:amazonses.com -all";
/// A 2048-bit RSA public key (base64), as a DKIM record's p=.
const DKIM_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0dAd4fgYtFPM5C6QoSeb0QTc8axwIPvKhlVVlyHUd9v6Hgyzlu3/futM4SNskldM452exmSVl1Ls4PXpBO6tUxKq6Bb9/6NZJVnH+GkepvK2srfFd/fWK1esSBguQJY1nKXIiZXd34PMdzio6+NNQw6bY4EAbqeYKmsxWOCTq/187Z9OcqWk/0pXyHG/RZz90s4r9ss/1RzPtXvkZMyPLGhcutekE79WYmE9sXT+2DXBPHTgCtGXmukWmuKH5FHnye0uVRDtQYBFhigQhKnRmYhASthXWtn2GQBn04Y2sM1/GHhmgM5jE8wlkkwMi26/TZ3E2Qsqx2j/ZtutGnR4qwIDAQAB";

fn zones() -> serde_json::Value {
    let mut z = serde_json::json!({
        "amazonses.com": {"TXT": [SES_SPF]},
        // Failed MAIL FROM, UseDefaultValue, no DKIM, p=reject: refused.
        "_dmarc.reject.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        // The same with verified Easy DKIM, its three records in place: aligned.
        "_dmarc.signed.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        "s1._domainkey.signed.example.com": {"CNAME": "s1.dkim.amazonses.com"},
        "s2._domainkey.signed.example.com": {"CNAME": "s2.dkim.amazonses.com"},
        "s3._domainkey.signed.example.com": {"CNAME": "s3.dkim.amazonses.com"},
        // A custom MAIL FROM in Success whose SPF passes for SES: aligned when relaxed,
        // not under aspf=s (bounce.strict.example.com is not strict.example.com).
        "bounce.relaxed.example.com": {"MX": [MX_OK], "TXT": [SPF_OK]},
        "_dmarc.relaxed.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        "bounce.strict.example.com": {"MX": [MX_OK], "TXT": [SPF_OK]},
        "_dmarc.strict.example.com": {"TXT": ["v=DMARC1; p=reject; aspf=s"]},
        // pct=0: reject is applied to none of the mail, which is quarantined instead.
        "_dmarc.pct.example.com": {"TXT": ["v=DMARC1; p=reject; pct=0"]},
        // A subdomain without a record of its own: its organizational domain's sp=.
        "_dmarc.example.org": {"TXT": ["v=DMARC1; p=reject; sp=quarantine"]},
        // No DMARC record anywhere: SES's mail is delivered as far as DMARC goes.
        // (_dmarc.none.example.net is absent.)
        // The DMARC lookup fails: no record state, no verdict.
        "_dmarc.servfail.example.com": {"servfail": true},
        "_dmarc.spf11.example.com": {"TXT": ["v=DMARC1; p=none"]},
        // Bring-your-own DKIM: SES names the selector as the token, and its key is a
        // TXT record there, not a CNAME: published, so not "missing".
        "_dmarc.byo.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        "_amazonses.legacy.example.com": {"TXT": ["token"]},
        "sel2026._domainkey.byo.example.com": {"TXT": [format!("v=DKIM1; k=rsa; p={DKIM_KEY}")]},
    });
    // 11 includes before SES's: the 11th DNS-querying term is a permerror.
    let includes: Vec<String> = (1..=11)
        .map(|i| format!("include:i{i}.example.net"))
        .collect();
    z["bounce.spf11.example.com"] = serde_json::json!({
        "MX": [MX_OK],
        "TXT": [format!("v=spf1 {} include:amazonses.com -all", includes.join(" "))]
    });
    for i in 1..=11 {
        z[format!("i{i}.example.net")] = serde_json::json!({"TXT": ["v=spf1 -all"]});
    }
    // Void lookups (RFC 7208 4.6.4: NXDOMAIN or no records; more than two is a
    // permerror). Three void terms before SES's include: permerror. Two void terms and
    // an mx term whose exchange has no address (part of the mx term, not a void one):
    // pass. Three void terms after SES's include has matched are never looked up: pass.
    z["bounce.void3.example.com"] = serde_json::json!({"MX": [MX_OK], "TXT": [
        "v=spf1 a:nx1.example.net mx:nx2.example.net a:empty.example.net include:amazonses.com -all"
    ]});
    z["empty.example.net"] = serde_json::json!({"TXT": ["not an address"]});
    z["bounce.void2.example.com"] = serde_json::json!({"MX": [MX_OK], "TXT": [
        "v=spf1 a:nx1.example.net mx:mail.void2.example.com a:nx4.example.net include:amazonses.com -all"
    ]});
    z["mail.void2.example.com"] = serde_json::json!({"MX": ["10 nohost.example.net"]});
    z["bounce.voidlate.example.com"] = serde_json::json!({"MX": [MX_OK], "TXT": [
        "v=spf1 include:amazonses.com a:nx1.example.net a:nx2.example.net a:nx3.example.net -all"
    ]});
    z
}

fn identities(double: &Double) {
    let failed =
        r#""mail_from_domain": "bounce.{d}", "status": "Failed", "behavior": "UseDefaultValue""#;
    let success =
        r#""mail_from_domain": "bounce.{d}", "status": "Success", "behavior": "UseDefaultValue""#;
    for (name, mail_from, dkim) in [
        ("reject.example.com", failed, r#""dkim_enabled": false"#),
        (
            "signed.example.com",
            failed,
            r#""dkim_enabled": true, "dkim_status": "Success", "dkim_tokens": ["s1", "s2", "s3"]"#,
        ),
        ("relaxed.example.com", success, r#""dkim_enabled": false"#),
        ("strict.example.com", success, r#""dkim_enabled": false"#),
        ("pct.example.com", failed, r#""dkim_enabled": false"#),
        ("news.example.org", failed, r#""dkim_enabled": false"#),
        ("none.example.net", failed, r#""dkim_enabled": false"#),
        ("servfail.example.com", failed, r#""dkim_enabled": false"#),
        ("spf11.example.com", success, r#""dkim_enabled": false"#),
        ("void3.example.com", success, r#""dkim_enabled": false"#),
        ("void2.example.com", success, r#""dkim_enabled": false"#),
        ("voidlate.example.com", success, r#""dkim_enabled": false"#),
        (
            "byo.example.com",
            failed,
            r#""dkim_enabled": true, "dkim_status": "Success", "dkim_tokens": ["sel2026"]"#,
        ),
    ] {
        let mail_from = mail_from.replace("{d}", name);
        double.set_identity(name, &format!("{{{mail_from}, {dkim}}}"));
    }
    // Addresses of the signed domain, without a custom MAIL FROM of their own: judged
    // as their domain is, whether SES reports their DKIM as the domain's (it does) or
    // as off.
    double.set_identity(
        "ops@signed.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Success"}"#,
    );
    double.set_identity(
        "billing@signed.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": false}"#,
    );
    // A domain verified the legacy way: no Easy DKIM, its _amazonses TXT record holds
    // the token SES gave (the double's is "token").
    double.set_identity(
        "legacy.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": false, "dkim_status": "NotStarted", "verification_status": "Success"}"#,
    );
}

fn verdict(m: &Metrics, identity: &str) -> Option<&'static str> {
    ["aligned", "none", "quarantine", "reject"]
        .into_iter()
        .find(|v| {
            m.get(&format!(
                "aws_ses_identity_dmarc_verdict{{identity=\"{identity}\",verdict=\"{v}\"}}"
            )) == Some(1.0)
        })
}

fn dkim_records(m: &Metrics, identity: &str, state: &str) -> Option<f64> {
    m.get(&format!(
        "aws_ses_identity_dkim_dns_records{{identity=\"{identity}\",state=\"{state}\"}}"
    ))
}

fn spf_status(m: &Metrics, identity: &str, status: &str) -> Option<f64> {
    m.get(&format!(
        "aws_ses_identity_mail_from_spf_status{{identity=\"{identity}\",status=\"{status}\"}}"
    ))
}

/// The exporter with the dkim collector, `collector` and the dns collector on, asking
/// only the loopback DNS server, polling every 3 s.
fn exporter(double: &Double, dns: &DnsServer, collector: &str) -> Exporter {
    let ns = format!("127.0.0.1:{}", dns.port);
    Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "3s",
            "--ses.rate",
            "20",
            "--collector.dkim",
            collector,
            "--dns.nameserver",
            &ns,
            "--dns.timeout",
            "1s",
        ],
    )
}

#[test]
fn receivers_verdicts_follow_spf_dkim_and_dmarc_and_a_deleted_dkim_record_shows() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(dir.path(), &zones());
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    identities(&double);
    let exporter = exporter(&double, &dns, "--collector.verification");
    let m = exporter.wait_metrics("every verdict that can be judged", |m| {
        [
            "reject.example.com",
            "signed.example.com",
            "ops@signed.example.com",
            "billing@signed.example.com",
            "relaxed.example.com",
            "strict.example.com",
            "pct.example.com",
            "news.example.org",
            "none.example.net",
            "spf11.example.com",
            "byo.example.com",
        ]
        .iter()
        .all(|id| verdict(m, id).is_some())
    });
    promtool_check(&m.text);
    let expect = |id: &str, v: &str| assert_eq!(verdict(&m, id), Some(v), "{id}\n{}", m.text);
    // A failed MAIL FROM with UseDefaultValue (amazonses.com as MAIL FROM), no DKIM,
    // p=reject: receivers refuse the mail SES sends. The same with verified DKIM whose
    // records are in place: DMARC passes. Its address is judged as the domain.
    expect("reject.example.com", "reject");
    expect("signed.example.com", "aligned");
    expect("ops@signed.example.com", "aligned");
    expect("billing@signed.example.com", "aligned");
    // SPF aligned through the custom MAIL FROM when relaxed, not under aspf=s.
    expect("relaxed.example.com", "aligned");
    expect("strict.example.com", "reject");
    // pct=0: the mail not sampled gets the next policy down.
    expect("pct.example.com", "quarantine");
    // A subdomain takes its organizational domain's sp=.
    expect("news.example.org", "quarantine");
    expect("none.example.net", "none");
    // SPF's evaluation: a pass for SES's address; 11 DNS-querying terms a permerror.
    assert_eq!(spf_status(&m, "relaxed.example.com", "pass"), Some(1.0));
    assert_eq!(
        spf_status(&m, "spf11.example.com", "permerror"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(spf_status(&m, "spf11.example.com", "pass"), Some(0.0));
    expect("spf11.example.com", "none");
    // The void-lookup limit, counted by term.
    let m = exporter.wait_metrics("the void-lookup cases evaluated", |m| {
        [
            "void3.example.com",
            "void2.example.com",
            "voidlate.example.com",
        ]
        .iter()
        .all(|id| spf_status(m, id, "pass").is_some())
    });
    for (id, status) in [
        ("void3.example.com", "permerror"),
        ("void2.example.com", "pass"),
        ("voidlate.example.com", "pass"),
    ] {
        assert_eq!(spf_status(&m, id, status), Some(1.0), "{id}\n{}", m.text);
    }
    // The DMARC record's tags, where it was found.
    assert_eq!(
        m.get("aws_ses_identity_dmarc_policy_info{identity=\"news.example.org\",record_domain=\"example.org\",p=\"reject\",sp=\"quarantine\",adkim=\"r\",aspf=\"r\"}"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.identity("aws_ses_identity_dmarc_pct", "pct.example.com"),
        Some(0.0)
    );
    assert_eq!(
        m.get("aws_ses_identity_dmarc_record{identity=\"none.example.net\",state=\"absent\"}"),
        Some(1.0)
    );
    // A DMARC lookup that fails invents nothing: no record state, no verdict.
    assert!(
        !m.series_of("servfail.example.com")
            .iter()
            .any(|s| s.contains("dmarc")),
        "{}",
        m.text
    );
    assert_eq!(dkim_records(&m, "signed.example.com", "correct"), Some(3.0));
    assert_eq!(
        dkim_records(&m, "byo.example.com", "correct"),
        Some(1.0),
        "{}",
        m.text
    );
    expect("byo.example.com", "aligned");
    assert_eq!(dkim_records(&m, "signed.example.com", "missing"), Some(0.0));
    // The legacy record holds the token; a domain whose DKIM is verified is not asked.
    let legacy = |m: &Metrics, id: &str, state: &str| {
        m.get(&format!(
            "aws_ses_identity_verification_dns_record{{identity=\"{id}\",state=\"{state}\"}}"
        ))
    };
    let m = exporter.wait_metrics("the legacy record checked", |m| {
        legacy(m, "legacy.example.com", "correct").is_some()
    });
    assert_eq!(
        legacy(&m, "legacy.example.com", "correct"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(legacy(&m, "signed.example.com", "missing"), None);

    // One DKIM CNAME deleted while SES still says Success: it shows as missing, and
    // DKIM no longer counts as aligned (SES will fail DKIM, then the verification).
    let mut changed = zones();
    changed
        .as_object_mut()
        .unwrap()
        .remove("s2._domainkey.signed.example.com");
    dns.set(&changed);
    let m = wait_for(
        Duration::from_secs(90),
        "the deleted record to show",
        || {
            let m = Metrics::parse(&exporter.metrics());
            (dkim_records(&m, "signed.example.com", "missing") == Some(1.0)).then_some(m)
        },
    );
    assert_eq!(dkim_records(&m, "signed.example.com", "correct"), Some(2.0));
    assert_eq!(
        m.get("aws_ses_identity_dkim_status{identity=\"signed.example.com\",status=\"Success\"}"),
        Some(1.0)
    );
    let m = exporter.wait_metrics("the verdict to follow", |m| {
        verdict(m, "signed.example.com") == Some("reject")
    });
    assert_eq!(verdict(&m, "ops@signed.example.com"), Some("reject"));
    assert_eq!(verdict(&m, "billing@signed.example.com"), Some("reject"));
    let log = exporter.proc.log();
    assert!(log.contains("Easy DKIM CNAME record is missing"), "{log}");

    // The legacy record deleted while SES still says Success: missing.
    changed
        .as_object_mut()
        .unwrap()
        .remove("_amazonses.legacy.example.com");
    dns.set(&changed);
    let m = wait_for(Duration::from_secs(90), "the legacy record to go", || {
        let m = Metrics::parse(&exporter.metrics());
        (legacy(&m, "legacy.example.com", "missing") == Some(1.0)).then_some(m)
    });
    assert_eq!(
        m.get("aws_ses_identity_verification_status{identity=\"legacy.example.com\",status=\"Success\"}"),
        Some(1.0)
    );
    assert!(exporter
        .proc
        .log()
        .contains("_amazonses TXT record no longer holds"));
}

/// The DKIM records judged by the rule SES verifies them by, from each domain's DKIM
/// origin and SES's signing zone (SESv2 GetEmailIdentity, which the identity_reasons
/// collector sweeps healthy domains for): Easy DKIM must point into the zone SES
/// names, bring-your-own DKIM must publish its key (here through a CNAME to the key's
/// host), and a replicated identity's records point into its primary region's zone.
#[test]
fn dkim_records_are_judged_by_their_origin_and_the_signing_zone_ses_names() {
    const ZONE: &str = "dkim.af-south-1.amazonses.com";
    let dir = tempfile::tempdir().unwrap();
    let mut z = serde_json::json!({
        "amazonses.com": {"TXT": [SES_SPF]},
        "ses-key-2026.provider.example.net": {"TXT": [format!("v=DKIM1; k=rsa; p={DKIM_KEY}")]},
        "sel1._domainkey.external.example.com": {"CNAME": "ses-key-2026.provider.example.net"},
    });
    for (domain, zone) in [
        // Copied from another region's console: SES in this one will fail them.
        ("otherzone.example.com", "dkim.amazonses.com"),
        ("rightzone.example.com", ZONE),
        ("replicated.example.com", "dkim.eu-west-1.amazonses.com"),
    ] {
        for t in ["t1", "t2", "t3"] {
            z[format!("{t}._domainkey.{domain}")] =
                serde_json::json!({"CNAME": format!("{t}.{zone}")});
        }
    }
    let dns = DnsServer::start(dir.path(), &z);
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    let easy = |origin: &str| {
        format!(
            r#"{{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Success", "dkim_tokens": ["t1", "t2", "t3"], "signing_origin": "{origin}", "signing_hosted_zone": "{ZONE}"}}"#
        )
    };
    double.set_identity("otherzone.example.com", &easy("AWS_SES"));
    double.set_identity("rightzone.example.com", &easy("AWS_SES"));
    double.set_identity("replicated.example.com", &easy("AWS_SES_EU_WEST_1"));
    double.set_identity(
        "external.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Success", "dkim_tokens": ["sel1"], "signing_origin": "EXTERNAL"}"#,
    );
    let exporter = exporter(&double, &dns, "--collector.identity_reasons");
    let m = exporter.wait_metrics("the records judged by their origin", |m| {
        dkim_records(m, "otherzone.example.com", "elsewhere") == Some(3.0)
            && dkim_records(m, "external.example.com", "correct") == Some(1.0)
    });
    promtool_check(&m.text);
    for (id, correct, elsewhere) in [
        ("otherzone.example.com", 0.0, 3.0),
        ("rightzone.example.com", 3.0, 0.0),
        ("replicated.example.com", 3.0, 0.0),
        ("external.example.com", 1.0, 0.0),
    ] {
        assert_eq!(
            dkim_records(&m, id, "correct"),
            Some(correct),
            "{id}\n{}",
            m.text
        );
        assert_eq!(
            dkim_records(&m, id, "elsewhere"),
            Some(elsewhere),
            "{id}\n{}",
            m.text
        );
    }
    // The healthy identities' answers are used, not exported as reasons.
    assert_eq!(
        m.identity(
            "aws_ses_identity_reason_last_refresh_timestamp_seconds",
            "rightzone.example.com"
        ),
        None
    );
}
