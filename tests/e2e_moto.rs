//! The real exporter binary, through the real AWS SDK, against moto, a real SES
//! emulator, seeded through the SES API itself. Proves the wire format and the SDK
//! path; the states moto cannot produce are in `e2e_double.rs`.

mod common;

use aws_sdk_ses::types::BehaviorOnMxFailure;

use common::{assume_role, runtime, sdk_client, sdk_client_as, Double, Exporter, Metrics, Moto};

const GET_OP: &str = "GetIdentityMailFromDomainAttributes";
const LIST_OP: &str = "ListIdentities";

async fn set_mail_from(
    ses: &aws_sdk_ses::Client,
    identity: &str,
    domain: Option<&str>,
    behavior: BehaviorOnMxFailure,
) {
    let mut req = ses.set_identity_mail_from_domain().identity(identity);
    if let Some(domain) = domain {
        req = req
            .mail_from_domain(domain)
            .behavior_on_mx_failure(behavior);
    }
    req.send().await.expect("SetIdentityMailFromDomain");
}

#[test]
fn discovers_250_identities_and_fetches_them_in_3_calls_counted_at_the_server() {
    let moto = Moto::start();
    let rt = runtime();
    let ses = sdk_client(&moto.url());
    rt.block_on(async {
        for i in 0..250 {
            ses.verify_domain_identity()
                .domain(format!("d{i:03}.example.org"))
                .send()
                .await
                .expect("VerifyDomainIdentity");
        }
        for i in 0..10 {
            let id = format!("d{i:03}.example.org");
            set_mail_from(
                &ses,
                &id,
                Some(&format!("bounce.{id}")),
                BehaviorOnMxFailure::RejectMessage,
            )
            .await;
        }
    });
    // A recording proxy in front of moto counts what reaches the server.
    let proxy = Double::start(&[
        "--upstream",
        &moto.addr.to_string(),
        "--seed",
        "none",
        "--rate",
        "0",
    ]);
    let exporter = Exporter::start(&proxy.url(), None, &[]);
    exporter.wait_ready();
    let m = exporter.wait_metrics("a complete cycle", |m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
    });

    let requests = proxy.requests();
    let gets: Vec<usize> = requests
        .iter()
        .filter(|r| r.action == GET_OP)
        .map(|r| r.identities)
        .collect();
    assert_eq!(gets, vec![100, 100, 50], "{requests:?}");
    assert_eq!(requests.iter().filter(|r| r.action == LIST_OP).count(), 1);
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");

    assert_eq!(m.get("aws_ses_exporter_identities"), Some(250.0));
    assert_eq!(m.requests(GET_OP, "success"), 3.0);
    assert_eq!(m.requests(LIST_OP, "success"), 1.0);
    for i in 0..250 {
        let id = format!("d{i:03}.example.org");
        assert_eq!(
            m.identity("aws_ses_identity_exists", &id),
            Some(1.0),
            "{id}"
        );
        let configured = if i < 10 { 1.0 } else { 0.0 };
        assert_eq!(
            m.identity("aws_ses_identity_mail_from_configured", &id),
            Some(configured),
            "{id}"
        );
    }
    assert_eq!(m.status("d003.example.org", "Success"), Some(1.0));
    assert_eq!(
        m.get("aws_ses_identity_mail_from_info{identity=\"d003.example.org\",identity_type=\"Domain\",mail_from_domain=\"bounce.d003.example.org\"}"),
        Some(1.0)
    );
    assert_eq!(
        m.status("d042.example.org", "Success"),
        None,
        "no MAIL FROM, no status"
    );
}

#[test]
fn mail_from_set_unset_changed_and_deleted_identities_follow_ses() {
    let moto = Moto::start();
    let rt = runtime();
    let ses = sdk_client(&moto.url());
    rt.block_on(async {
        for d in ["a.example.net", "b.example.net"] {
            ses.verify_domain_identity()
                .domain(d)
                .send()
                .await
                .expect("VerifyDomainIdentity");
        }
        ses.verify_email_identity()
            .email_address("ops@example.net")
            .send()
            .await
            .expect("VerifyEmailIdentity");
        set_mail_from(
            &ses,
            "a.example.net",
            Some("bounce.a.example.net"),
            BehaviorOnMxFailure::RejectMessage,
        )
        .await;
    });
    let exporter = Exporter::start(
        &moto.url(),
        None,
        &[
            "--poll.interval",
            "1s",
            "--discovery.interval",
            "1s",
            "--ses.rate",
            "5",
        ],
    );
    exporter.wait_ready();
    let m = Metrics::parse(&exporter.metrics());
    assert_eq!(
        m.identity("aws_ses_identity_mail_from_configured", "a.example.net"),
        Some(1.0)
    );
    assert_eq!(m.status("a.example.net", "Success"), Some(1.0));
    assert_eq!(
        m.get("aws_ses_identity_mail_from_behavior_on_mx_failure{identity=\"a.example.net\",behavior=\"RejectMessage\"}"),
        Some(1.0)
    );
    assert_eq!(
        m.identity("aws_ses_identity_mail_from_configured", "b.example.net"),
        Some(0.0)
    );
    assert_eq!(m.status("b.example.net", "Success"), None);
    assert_eq!(
        m.get("aws_ses_identity_mail_from_info{identity=\"ops@example.net\",identity_type=\"EmailAddress\",mail_from_domain=\"\"}"),
        Some(1.0)
    );

    // Changed: another MAIL FROM domain and behaviour.
    rt.block_on(set_mail_from(
        &ses,
        "a.example.net",
        Some("mx.a.example.net"),
        BehaviorOnMxFailure::UseDefaultValue,
    ));
    // Set where there was none.
    rt.block_on(set_mail_from(
        &ses,
        "b.example.net",
        Some("bounce.b.example.net"),
        BehaviorOnMxFailure::RejectMessage,
    ));
    let m = exporter.wait_metrics("the changed MAIL FROM", |m| {
        m.get("aws_ses_identity_mail_from_info{identity=\"a.example.net\",identity_type=\"Domain\",mail_from_domain=\"mx.a.example.net\"}")
            == Some(1.0)
            && m.identity("aws_ses_identity_mail_from_configured", "b.example.net") == Some(1.0)
    });
    assert_eq!(
        m.get("aws_ses_identity_mail_from_behavior_on_mx_failure{identity=\"a.example.net\",behavior=\"UseDefaultValue\"}"),
        Some(1.0)
    );
    assert!(m.get("aws_ses_identity_mail_from_info{identity=\"a.example.net\",identity_type=\"Domain\",mail_from_domain=\"bounce.a.example.net\"}").is_none());
    assert_eq!(m.status("b.example.net", "Success"), Some(1.0));
    let log = exporter.proc.log();
    assert!(
        log.contains("MAIL FROM state changed") && log.contains("identity=a.example.net"),
        "{log}"
    );

    // Unset: the status state set goes, configured drops to 0.
    rt.block_on(set_mail_from(
        &ses,
        "a.example.net",
        None,
        BehaviorOnMxFailure::UseDefaultValue,
    ));
    let m = exporter.wait_metrics("the cleared MAIL FROM", |m| {
        m.identity("aws_ses_identity_mail_from_configured", "a.example.net") == Some(0.0)
    });
    assert_eq!(m.status("a.example.net", "Success"), None);

    // Deleted: every series of the identity goes after the next discovery.
    rt.block_on(async {
        ses.delete_identity()
            .identity("b.example.net")
            .send()
            .await
            .expect("DeleteIdentity");
    });
    let m = exporter.wait_metrics("the deleted identity to vanish", |m| {
        m.series_of("b.example.net").is_empty()
    });
    assert_eq!(m.get("aws_ses_exporter_identities"), Some(2.0));
    assert_eq!(m.get("aws_ses_exporter_up"), Some(1.0));
}

/// Targets in two regions of the default account and, through a role moto lets the
/// exporter assume, in a second account; with the dkim, verification and quota
/// collectors. moto keeps accounts and regions apart, so each identity must show up
/// under its own account and region only. moto does not emulate
/// GetAccountSendingEnabled: that part of the quota collector fails, visibly, and no
/// value is made up for it.
#[test]
fn two_accounts_and_two_regions_with_every_collector_through_moto() {
    const ROLE: &str = "arn:aws:iam::111111111111:role/ses-identity-exporter-target";
    let moto = Moto::start();
    let rt = runtime();
    rt.block_on(async {
        let home = sdk_client(&moto.url());
        home.verify_domain_identity()
            .domain("home.example.org")
            .send()
            .await
            .expect("VerifyDomainIdentity");
        home.verify_domain_dkim()
            .domain("home.example.org")
            .send()
            .await
            .expect("VerifyDomainDkim");
        set_mail_from(
            &home,
            "home.example.org",
            Some("bounce.home.example.org"),
            BehaviorOnMxFailure::RejectMessage,
        )
        .await;
        let eu = sdk_client_as(&moto.url(), "eu-west-1", common::test_credentials());
        eu.verify_domain_identity()
            .domain("eu.example.org")
            .send()
            .await
            .expect("VerifyDomainIdentity in eu-west-1");
        let other = sdk_client_as(
            &moto.url(),
            common::REGION,
            assume_role(&moto.url(), ROLE).await,
        );
        other
            .verify_domain_identity()
            .domain("other.example.org")
            .send()
            .await
            .expect("VerifyDomainIdentity in the other account");
    });
    let config = format!(
        "targets:\n  - region: us-east-1\n  - region: eu-west-1\n  - region: us-east-1\n    role_arn: {ROLE}\n"
    );
    let exporter = Exporter::start(
        &moto.url(),
        Some(&config),
        &[
            "--poll.interval",
            "2s",
            "--collector.dkim",
            "--collector.verification",
            "--collector.quota",
        ],
    );
    exporter.wait_ready();
    let labels = |account: &str, region: &str| {
        format!("aws_account_id=\"{account}\",aws_region=\"{region}\"")
    };
    let home = labels(common::ACCOUNT, common::REGION);
    let eu = labels(common::ACCOUNT, "eu-west-1");
    let other = labels("111111111111", common::REGION);
    let m = exporter.wait_metrics("every target's identities", |m| {
        m.text.contains(&format!(
            "aws_ses_identity_exists{{{eu},identity=\"eu.example.org\"}} 1"
        )) && m.text.contains(&format!(
            "aws_ses_identity_exists{{{other},identity=\"other.example.org\"}} 1"
        )) && m.identity("aws_ses_identity_exists", "home.example.org") == Some(1.0)
    });
    // Each identity under its own account and region only.
    for (id, at) in [
        ("home.example.org", &home),
        ("eu.example.org", &eu),
        ("other.example.org", &other),
    ] {
        for line in m
            .text
            .lines()
            .filter(|l| l.contains(&format!("identity=\"{id}\"")))
        {
            assert!(
                line.contains(at.as_str()),
                "{id} under another target: {line}"
            );
        }
        // One verification state, as moto reports it (a verified identity).
        assert!(
            m.text.contains(&format!(
                "aws_ses_identity_verification_status{{{at},identity=\"{id}\",status=\"Success\"}} 1"
            )),
            "{id}: {}",
            m.text
        );
        let dkim_states = m
            .text
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "aws_ses_identity_dkim_status{{{at},identity=\"{id}\""
                )) && l.ends_with(" 1")
            })
            .count();
        assert_eq!(dkim_states, 1, "{id}: exactly one DKIM state");
    }
    assert!(m.text.contains(&format!(
        "aws_ses_identity_dkim_enabled{{{home},identity=\"home.example.org\"}} 1"
    )));
    assert!(m.text.contains(&format!(
        "aws_ses_identity_mail_from_info{{{home},identity=\"home.example.org\",identity_type=\"Domain\",mail_from_domain=\"bounce.home.example.org\"}} 1"
    )));
    // The quota of every target, from GetSendQuota; GetAccountSendingEnabled is not
    // emulated: its family stays absent and the collector reports the failure.
    for at in [&home, &eu, &other] {
        assert!(
            m.text
                .contains(&format!("aws_ses_send_quota_max_emails{{{at}}} ")),
            "{at}: {}",
            m.text
        );
        assert!(m.text.contains(&format!(
            "aws_ses_exporter_collector_success{{{at},collector=\"quota\"}} 0"
        )));
        for c in ["mail_from", "dkim", "verification"] {
            assert!(
                m.text.contains(&format!(
                    "aws_ses_exporter_collector_success{{{at},collector=\"{c}\"}} 1"
                )),
                "{at} {c}"
            );
        }
    }
    assert!(!m.text.contains("aws_ses_account_sending_enabled{"));
}
