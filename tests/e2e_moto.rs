//! The real exporter binary, through the real AWS SDK, against moto, a real SES
//! emulator, seeded through the SES API itself. Proves the wire format and the SDK
//! path; the states moto cannot produce are in `e2e_double.rs`.

mod common;

use aws_sdk_ses::types::BehaviorOnMxFailure;

use common::{runtime, sdk_client, Double, Exporter, Metrics, Moto};

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
