//! A real Prometheus (Debian's package) scraping the real exporter, which polls the
//! SES double (SES and STS) holding identities in every state in two accounts and two
//! regions, with the shipped scrape config and rule file. Asserted through
//! Prometheus' HTTP API: the target is up, every target of the estate is polled under
//! its own labels, every PromQL expression of the dashboard returns data, and each
//! alert fires for exactly the identities or accounts it is about.
//!
//! Documented transforms, and nothing else (rules and prometheus.yml are adapted in
//! tests/common/prometheus.rs):
//! - rules: every `for:` becomes `for: 10s` (the real durations are proven by
//!   `promtool test rules`); `keep_firing_for` and expressions are unchanged;
//! - prometheus.yml: the target becomes the test exporter's address, the intervals
//!   2s, and the Alertmanager section is dropped (none runs here);
//! - dashboard expressions: `$job`, `$identity`, `$aws_account_id`, `$aws_region` → `.+`
//!   (the variables' "All" value),
//!   `$__rate_interval` → `20s` (ten scrape intervals), and a templating query
//!   `label_values(EXPR, LABEL)` is run as `group by (LABEL) (EXPR)`.

mod common;

use std::time::Duration;

use common::dns::DnsServer;
use common::pki::Pki;
use common::prometheus::Prometheus;
use common::{manifest_dir, wait_for, Double, Exporter};

/// Every PromQL expression of the dashboard, templating queries included, after the
/// documented substitutions.
fn dashboard_queries() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("dashboards/ses-identity-exporter.json"))
            .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(
                t["expr"]
                    .as_str()
                    .expect("every target has an expr")
                    .to_owned(),
            );
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().expect("query variable");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .expect("label_values(EXPR, LABEL)");
            let (expr, label) = inner.rsplit_once(',').unwrap();
            exprs.push(format!("group by ({}) ({})", label.trim(), expr.trim()));
        }
    }
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$job", ".+")
                .replace("$identity", ".+")
                .replace("$aws_account_id", ".+")
                .replace("$aws_region", ".+")
                .replace("$__rate_interval", "20s")
        })
        .inspect(|e| assert!(!e.contains('$'), "unsubstituted variable in {e}"))
        .collect()
}

/// The first expression of the dashboard panel titled `title`, substituted as
/// [`dashboard_queries`] does.
fn panel_query(title: &str) -> String {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("dashboards/ses-identity-exporter.json"))
            .unwrap(),
    )
    .unwrap();
    let panel = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel titled {title}"));
    panel["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .replace("$job", ".+")
        .replace("$identity", ".+")
        .replace("$aws_account_id", ".+")
        .replace("$aws_region", ".+")
}

/// The second account of the estate; the exporter reaches it through a role.
const OTHER_ACCOUNT: &str = "210987654321";
const ROLE: &str = common::ESTATE_ROLE;

#[test]
fn prometheus_scrapes_two_accounts_in_two_regions_dashboard_has_data_and_alerts_fire() {
    let double = Double::start(&["--rate", "10"]);
    // The estate, besides the demo identities (123456789012, us-east-1):
    // - 123456789012 eu-west-1: an identity whose DKIM failed;
    // - 210987654321 us-east-1 (through the role): the demo's failed-reject name,
    //   healthy there, and an identity whose verification failed;
    // - 210987654321 eu-west-1: sending paused by AWS (SHUTDOWN) and 90 % of the
    //   quota used;
    // - 123456789012 eu-west-1: in the sandbox, its production-access request pending;
    // - 123456789012 us-east-1: SES disabled one identity's sending (a reputation
    //   entity) while the account is HEALTHY, next to an ENABLED configuration set;
    //   SES says why lost.example.com's verification failed (identity_reasons).
    double.control(
        "PUT",
        &format!("/_double/roles/{ROLE}"),
        r#"{"external_id": "e2e-external-id"}"#,
    );
    let put = |account: &str, region: &str, name: &str, json: &str| {
        double.control(
            "PUT",
            &format!("/_double/identities/{name}?account={account}&region={region}"),
            json,
        );
    };
    put(
        common::ACCOUNT,
        "eu-west-1",
        "eu.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Failed", "verification_status": "Success"}"#,
    );
    put(
        OTHER_ACCOUNT,
        "us-east-1",
        "failed-reject.example.com",
        r#"{"mail_from_domain": "bounce.failed-reject.example.com", "status": "Success", "behavior": "RejectMessage", "dkim_enabled": true, "dkim_status": "Success", "verification_status": "Success"}"#,
    );
    put(
        OTHER_ACCOUNT,
        "us-east-1",
        "lost.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": false, "verification_status": "Failed", "verification_error_type": "HOST_NOT_FOUND", "verification_last_checked": 1765000000, "verification_last_success": 1764000000}"#,
    );
    // Receivers' view (dns collector): dmarc.example.org sends with SES's own MAIL
    // FROM and no DKIM under p=reject, so receivers refuse it; keys.example.org's
    // Easy DKIM records are gone while SES still says Success.
    put(
        common::ACCOUNT,
        "us-east-1",
        "dmarc.example.org",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": false, "verification_status": "Success"}"#,
    );
    put(
        common::ACCOUNT,
        "us-east-1",
        "keys.example.org",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Success", "verification_status": "Success"}"#,
    );
    put(
        OTHER_ACCOUNT,
        "eu-west-1",
        "paused.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Success", "verification_status": "Success"}"#,
    );
    double.control(
        "PUT",
        &format!("/_double/account?account={OTHER_ACCOUNT}&region=eu-west-1"),
        r#"{"sending_enabled": false, "max_24_hour_send": 50000, "max_send_rate": 14, "sent_last_24_hours": 45000, "enforcement_status": "SHUTDOWN"}"#,
    );
    double.control(
        "PUT",
        &format!(
            "/_double/account?account={}&region=eu-west-1",
            common::ACCOUNT
        ),
        r#"{"production_access_enabled": false, "review_status": "PENDING"}"#,
    );
    double.control(
        "PUT",
        &format!(
            "/_double/reputation-entities?account={}&region=us-east-1",
            common::ACCOUNT
        ),
        &format!(
            r#"[{{"reference": "arn:aws:ses:us-east-1:{a}:identity/success-default.example.com", "ses_status": "DISABLED", "ses_cause": "complaint rate above the policy's threshold", "ses_updated": 1765000000, "impact": "HIGH"}},
               {{"reference": "arn:aws:ses:us-east-1:{a}:configuration-set/marketing", "impact": "LOW"}}]"#,
            a = common::ACCOUNT
        ),
    );
    // DNS for every demo MAIL FROM domain: right, except success-reject's MX, which
    // points at another region while SES still says Success.
    let dns_dir = tempfile::tempdir().unwrap();
    let mut zones = serde_json::Map::new();
    for status in ["success", "pending", "failed", "temporaryfailure"] {
        for behavior in ["default", "reject"] {
            zones.insert(
                format!("bounce.{status}-{behavior}.example.com"),
                serde_json::json!({
                    "MX": ["10 feedback-smtp.us-east-1.amazonses.com"],
                    "TXT": ["v=spf1 include:amazonses.com ~all"]
                }),
            );
        }
    }
    zones.insert(
        "bounce.success-reject.example.com".into(),
        serde_json::json!({
            "MX": ["10 feedback-smtp.eu-west-1.amazonses.com"],
            "TXT": ["v=spf1 include:amazonses.com ~all"]
        }),
    );
    // Every other domain's Easy DKIM records (the double's tokens tok1..tok3) are in
    // place; example.com publishes p=none, dmarc.example.org p=reject; SES's SPF
    // record lists its sending networks, so SPF is evaluated for them.
    let mut domains: Vec<String> = ["success", "pending", "failed", "temporaryfailure"]
        .iter()
        .flat_map(|s| ["default", "reject"].map(|b| format!("{s}-{b}.example.com")))
        .collect();
    domains.extend(
        [
            "no-mail-from.example.com",
            "eu.example.com",
            "lost.example.com",
            "paused.example.com",
        ]
        .map(str::to_owned),
    );
    for domain in domains
        .iter()
        .chain(["dmarc.example.org".to_owned()].iter())
    {
        // The legacy verification record (the double's token), which keeps a domain
        // whose Easy DKIM is not verified verified.
        zones.insert(
            format!("_amazonses.{domain}"),
            serde_json::json!({"TXT": ["token"]}),
        );
        for token in ["tok1", "tok2", "tok3"] {
            zones.insert(
                format!("{token}._domainkey.{domain}"),
                serde_json::json!({"CNAME": format!("{token}.dkim.amazonses.com")}),
            );
        }
    }
    zones.insert(
        "_dmarc.example.com".into(),
        serde_json::json!({"TXT": ["v=DMARC1; p=none"]}),
    );
    zones.insert(
        "_dmarc.dmarc.example.org".into(),
        serde_json::json!({"TXT": ["v=DMARC1; p=reject"]}),
    );
    zones.insert(
        "amazonses.com".into(),
        serde_json::json!({"TXT": ["v=spf1 ip4:199.255.192.0/22 -all"]}),
    );
    let dns = DnsServer::start(dns_dir.path(), &serde_json::Value::Object(zones));
    let config = common::estate_config();
    let exporter = Exporter::start(
        &double.url(),
        Some(&config),
        &[
            "--ses.rate",
            "10",
            "--poll.interval",
            "5s",
            "--collector.dkim",
            "--collector.verification",
            "--collector.quota",
            "--collector.account",
            "--collector.reputation_entities",
            "--collector.identity_reasons",
            "--dns.nameserver",
            &format!("127.0.0.1:{}", dns.port),
        ],
    );
    exporter.wait_ready();
    let prom = Prometheus::start(&exporter.addr.to_string());

    wait_for(Duration::from_secs(60), "the target to be up", || {
        let r = prom.query("up{job=\"ses-identity-exporter\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });
    // Every account and region is polled, each under its own labels, all complete.
    let targets = wait_for(Duration::from_secs(60), "four targets up", || {
        let r = prom.query("aws_ses_exporter_up{job=\"ses-identity-exporter\"} == 1");
        (r.as_array().unwrap().len() == 4).then_some(r)
    });
    let mut pairs: Vec<(String, String)> = targets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["metric"]["aws_account_id"].as_str().unwrap().to_owned(),
                t["metric"]["aws_region"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            (common::ACCOUNT.to_owned(), "eu-west-1".to_owned()),
            (common::ACCOUNT.to_owned(), "us-east-1".to_owned()),
            (OTHER_ACCOUNT.to_owned(), "eu-west-1".to_owned()),
            (OTHER_ACCOUNT.to_owned(), "us-east-1".to_owned()),
        ]
    );

    let queries = dashboard_queries();
    assert!(queries.len() >= 22, "{queries:?}");
    for q in &queries {
        wait_for(Duration::from_secs(60), &format!("data for {q}"), || {
            let r = prom.query(q);
            (!r.as_array().unwrap().is_empty()).then_some(())
        });
    }

    let wanted = [
        "SesMailFromFailedRejectingMail",
        "SesMailFromFailed",
        "SesMailFromMxWrongRejectingMail",
        "SesDkimFailed",
        "SesIdentityVerificationFailed",
        "SesAccountSendingDisabled",
        "SesSendQuotaNearlyUsed",
        "SesMailFromPendingRejectingMail",
        "SesIdentityNotVerified",
        "SesAccountSendingPaused",
        "SesAccountInSandbox",
        "SesReputationEntityDisabled",
        "SesDmarcRejectsIdentityMail",
        "SesDkimRecordsMissing",
    ];
    let alerts = wait_for(
        Duration::from_secs(90),
        "every expected alert to fire",
        || {
            let a = prom.firing();
            let names: Vec<&str> = a
                .iter()
                .filter_map(|x| x["labels"]["alertname"].as_str())
                .collect();
            wanted.iter().all(|w| names.contains(w)).then_some(a)
        },
    );
    // (account, region, identity, severity, mail_from_domain) of each firing alert.
    let of = |name: &str| -> Vec<[String; 5]> {
        let mut v: Vec<[String; 5]> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                [
                    "aws_account_id",
                    "aws_region",
                    "identity",
                    "severity",
                    "mail_from_domain",
                ]
                .map(|l| a["labels"][l].as_str().unwrap_or("").to_owned())
            })
            .collect();
        v.sort();
        v
    };
    let row = |acc: &str, reg: &str, id: &str, sev: &str, dom: &str| {
        [acc, reg, id, sev, dom].map(str::to_owned)
    };
    let home = common::ACCOUNT;
    // failed-reject exists in both accounts: only the home account's fails.
    assert_eq!(
        of("SesMailFromFailedRejectingMail"),
        vec![row(
            home,
            "us-east-1",
            "failed-reject.example.com",
            "critical",
            "bounce.failed-reject.example.com"
        )]
    );
    assert_eq!(
        of("SesMailFromFailed"),
        vec![row(
            home,
            "us-east-1",
            "failed-default.example.com",
            "warning",
            "bounce.failed-default.example.com"
        )]
    );
    // The DNS check sees what SES does not yet: success-reject's MX is wrong.
    assert_eq!(
        of("SesMailFromMxWrongRejectingMail"),
        vec![row(
            home,
            "us-east-1",
            "success-reject.example.com",
            "critical",
            "bounce.success-reject.example.com"
        )]
    );
    assert!(of("SesMailFromMxWrong").is_empty());
    assert!(of("SesMailFromSpfMissing").is_empty());
    // The demo's DKIM status follows its MAIL FROM status; eu.example.com's failed.
    assert_eq!(
        of("SesDkimFailed"),
        vec![
            row(home, "eu-west-1", "eu.example.com", "warning", ""),
            row(
                home,
                "us-east-1",
                "failed-default.example.com",
                "warning",
                ""
            ),
            row(
                home,
                "us-east-1",
                "failed-reject.example.com",
                "warning",
                ""
            ),
        ]
    );
    assert_eq!(
        of("SesIdentityVerificationFailed"),
        vec![row(
            OTHER_ACCOUNT,
            "us-east-1",
            "lost.example.com",
            "critical",
            ""
        )]
    );
    // Pending + RejectMessage: SES refuses that mail now, so it pages.
    assert_eq!(
        of("SesMailFromPendingRejectingMail"),
        vec![row(
            home,
            "us-east-1",
            "pending-reject.example.com",
            "critical",
            "bounce.pending-reject.example.com"
        )]
    );
    // The demo address is still Pending verification: SES sends nothing from it.
    assert_eq!(
        of("SesIdentityNotVerified"),
        vec![row(home, "us-east-1", "ops@example.com", "critical", "")]
    );
    assert_eq!(
        of("SesAccountSendingDisabled"),
        vec![row(OTHER_ACCOUNT, "eu-west-1", "", "critical", "")]
    );
    assert_eq!(
        of("SesSendQuotaNearlyUsed"),
        vec![row(OTHER_ACCOUNT, "eu-west-1", "", "warning", "")]
    );
    // SES itself stops the mail: the paused account and region only; the sandbox; one
    // identity's sending disabled while its account is HEALTHY.
    assert_eq!(
        of("SesAccountSendingPaused"),
        vec![row(OTHER_ACCOUNT, "eu-west-1", "", "critical", "")]
    );
    assert_eq!(
        of("SesAccountInSandbox"),
        vec![row(home, "eu-west-1", "", "warning", "")]
    );
    assert_eq!(
        of("SesReputationEntityDisabled"),
        vec![row(
            home,
            "us-east-1",
            "success-default.example.com",
            "critical",
            ""
        )]
    );
    // What receivers do: only dmarc.example.org's mail is refused; only
    // keys.example.org's DKIM records are gone (its DMARC verdict stays none:
    // example.org publishes no policy).
    assert_eq!(
        of("SesDmarcRejectsIdentityMail"),
        vec![row(home, "us-east-1", "dmarc.example.org", "critical", "")]
    );
    assert_eq!(
        of("SesDkimRecordsMissing"),
        vec![row(home, "us-east-1", "keys.example.org", "warning", "")]
    );
    assert!(of("SesDmarcQuarantinesIdentityMail").is_empty());
    // The dashboard's verdict table lists the identities that are not fine (refused,
    // not aligned, or DKIM records gone) and none whose mail aligns with its records
    // in place.
    let identities = |q: &str| -> std::collections::BTreeSet<String> {
        prom.query(q)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let l = &r["metric"];
                format!(
                    "{}/{}/{}",
                    l["aws_account_id"], l["aws_region"], l["identity"]
                )
                .replace('"', "")
            })
            .collect()
    };
    let listed = identities(&panel_query("Receivers' DMARC verdict"));
    let fine = identities(
        "(aws_ses_identity_dmarc_verdict{verdict=\"aligned\"} == 1) unless on (aws_account_id, aws_region, identity) (sum without (state) (aws_ses_identity_dkim_dns_records{state=~\"missing|elsewhere\"}) > 0)",
    );
    assert!(
        !fine.is_empty(),
        "the estate has identities whose mail aligns"
    );
    assert!(
        ["dmarc.example.org", "keys.example.org"]
            .iter()
            .all(|id| listed.iter().any(|l| l.ends_with(&format!("/{id}")))),
        "{listed:?}"
    );
    assert!(
        listed.is_disjoint(&fine),
        "fine identities listed: {:?}",
        listed.intersection(&fine).collect::<Vec<_>>()
    );
    assert!(of("SesMailFromSpfPermError").is_empty());
    assert!(of("SesAccountUnderReview").is_empty());
    assert!(of("SesAccountStateUnknown").is_empty());
    assert!(of("SesReputationEntityStateUnknown").is_empty());
    // No alert about the exporter itself, and none for a healthy identity (the
    // demo's Pending and TemporaryFailure ones may alert, as they should).
    for a in &alerts {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        let id = a["labels"]["identity"].as_str().unwrap_or("");
        let account = a["labels"]["aws_account_id"].as_str().unwrap_or("");
        assert!(!name.starts_with("SesExporter"), "exporter alert: {a}");
        let healthy = (id.starts_with("success-")
            && name != "SesMailFromMxWrongRejectingMail"
            && name != "SesReputationEntityDisabled")
            || ["no-mail-from.example.com", "paused.example.com"].contains(&id)
            || (account == OTHER_ACCOUNT && id == "failed-reject.example.com");
        assert!(!healthy, "alert for a healthy identity: {a}");
    }
    let failed = alerts
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == "SesMailFromFailedRejectingMail"
                && a["labels"]["identity"] == "failed-reject.example.com"
        })
        .unwrap();
    assert!(failed["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("bounce.failed-reject.example.com"));

    // The rate contract holds per account, region and operation, at the server; the
    // role was assumed with its external ID (the double refuses it otherwise).
    let reqs = double.all_requests();
    let mut scopes = std::collections::BTreeMap::<(String, String, String), Vec<f64>>::new();
    for r in reqs
        .iter()
        .filter(|r| r.action != "GetCallerIdentity" && r.action != "AssumeRole")
    {
        scopes
            .entry((r.account.clone(), r.region.clone(), r.action.clone()))
            .or_default()
            .push(r.t);
    }
    assert_eq!(
        scopes
            .keys()
            .map(|k| (k.0.clone(), k.1.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        4
    );
    for (scope, times) in &scopes {
        for w in times.windows(11) {
            assert!(
                w[10] - w[0] >= 1.0,
                "more than 10 requests in a second to {scope:?}"
            );
        }
    }
    assert!(reqs
        .iter()
        .any(|r| r.action == "AssumeRole" && r.status == 200));
    assert!(
        reqs.iter().all(|r| r.status != 403),
        "a request was refused"
    );
    let callers = reqs
        .iter()
        .filter(|r| r.action == "GetCallerIdentity")
        .count();
    assert_eq!(callers, 4, "GetCallerIdentity once per target");
}

/// The web config as users deploy it: Prometheus scrapes over TLS, presenting a
/// client certificate the exporter verifies (CA and SAN) and basic auth credentials.
/// A job with a wrong password is refused (up 0) and gets no identity series.
#[test]
fn prometheus_scrapes_over_tls_with_a_client_certificate_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ca(dir.path(), "ca");
    pki.leaf("ca", "server", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    pki.leaf(
        "ca",
        "prometheus",
        "DNS:prometheus.monitoring.svc",
        "clientAuth",
    );
    let hash = bcrypt::hash_with_result("scrape-pw", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
             client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  \
             client_allowed_sans: [prometheus.monitoring.svc]\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let double = Double::start(&["--seed", "demo"]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "5s",
            "--web.config.file",
            &web.display().to_string(),
        ],
    );

    std::fs::write(dir.path().join("good-pw"), "scrape-pw").unwrap();
    std::fs::write(dir.path().join("bad-pw"), "guess").unwrap();
    let job = |name: &str, password_file: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    \
             basic_auth: {{username: prometheus, password_file: {password_file}}}\n    \
             tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}, server_name: localhost}}\n    \
             static_configs: [{{targets: ['{target}']}}]\n",
            ca = pki.path("ca.pem"),
            cert = pki.path("prometheus.pem"),
            key = pki.path("prometheus.key"),
            target = exporter.addr,
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("tls", &dir.path().join("good-pw").display().to_string()),
        job(
            "wrong-password",
            &dir.path().join("bad-pw").display().to_string()
        ),
    );
    let prom_dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::launch(prom_dir, &config);

    wait_for(Duration::from_secs(60), "the TLS target to be up", || {
        let r = prom.query("up{job=\"tls\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });
    wait_for(Duration::from_secs(60), "identity series over TLS", || {
        let r = prom.query("aws_ses_identity_mail_from_status{job=\"tls\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });
    wait_for(
        Duration::from_secs(60),
        "the wrong-password job to be down",
        || {
            let r = prom.query("up{job=\"wrong-password\"} == 0");
            (!r.as_array().unwrap().is_empty()).then_some(())
        },
    );
    let leaked = prom.query("count({job=\"wrong-password\", __name__=~\"aws_ses_.*\"})");
    assert!(leaked.as_array().unwrap().is_empty(), "{leaked}");
}
