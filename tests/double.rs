//! The SES double's own contract, through the real SDKs (SES's and SESv2's): what the
//! exporter's tests rely on it to enforce (the 100-identity limit, paging, its rate
//! limit, signed requests) and to answer (SESv2's REST-JSON, field by field, with
//! the fields a test leaves out really absent from the JSON).

mod common;

use aws_sdk_ses::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{
    BehaviorOnMxFailure, DkimSigningAttributesOrigin, DkimStatus, FeatureStatus, IdentityFilterKey,
    IdentityType, MailFromDomainStatus, MailType, RecommendationImpact, ReputationEntityFilterKey,
    ReputationEntityType, ReviewStatus, SendingStatus, VerificationError, VerificationStatus,
};
use serde_json::Value;

use common::{http, runtime, sdk_client, test_credentials, Double, HttpResponse, REGION};

#[test]
fn rejects_more_than_100_identities() {
    let double = Double::start(&["--rate", "0"]);
    let ses = sdk_client(&double.url());
    runtime().block_on(async {
        let ids: Vec<String> = (0..101).map(|i| format!("d{i}.example.com")).collect();
        let err = ses
            .get_identity_mail_from_domain_attributes()
            .set_identities(Some(ids.clone()))
            .send()
            .await
            .expect_err("101 identities must be refused");
        assert_eq!(err.code(), Some("InvalidParameterValue"));
        let ok = ses
            .get_identity_mail_from_domain_attributes()
            .set_identities(Some(ids[..100].to_vec()))
            .send()
            .await
            .expect("100 identities are fine");
        assert!(
            ok.mail_from_domain_attributes().is_empty(),
            "unknown identities are left out"
        );
    });
    let statuses: Vec<u16> = double.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![400, 200]);
}

#[test]
fn pages_list_identities() {
    let double = Double::start(&["--rate", "0", "--seed-count", "5"]);
    let ses = sdk_client(&double.url());
    let all = runtime().block_on(async {
        let mut token = None;
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let page = ses
                .list_identities()
                .max_items(4)
                .set_next_token(token)
                .send()
                .await
                .expect("ListIdentities");
            pages += 1;
            all.extend(page.identities().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, 4, "15 identities in pages of 4");
        all
    });
    assert_eq!(all.len(), 15);
    assert!(all.contains(&"ops@example.com".to_owned()));
}

#[test]
fn throttles_above_its_rate_and_on_demand() {
    let double = Double::start(&["--rate", "1"]);
    let ses = sdk_client(&double.url());
    runtime().block_on(async {
        let first = ses.list_identities().send().await;
        assert!(first.is_ok());
        let second = ses
            .list_identities()
            .send()
            .await
            .expect_err("a second request within 1 s");
        assert_eq!(second.code(), Some("Throttling"));
        // The limit is per operation: another operation still goes through.
        ses.get_identity_mail_from_domain_attributes()
            .identities("failed-reject.example.com")
            .send()
            .await
            .expect("another operation has its own budget");
    });
    let double = Double::start(&["--rate", "0"]);
    double.set_faults(r#"{"throttle_every": 2, "actions": ["ListIdentities"]}"#);
    let ses = sdk_client(&double.url());
    runtime().block_on(async {
        assert!(ses.list_identities().send().await.is_ok());
        assert_eq!(
            ses.list_identities().send().await.unwrap_err().code(),
            Some("Throttling")
        );
        assert!(ses.list_identities().send().await.is_ok());
    });
}

#[test]
fn refuses_unsigned_requests_and_reports_statuses() {
    let double = Double::start(&["--rate", "0"]);
    let r = http(
        double.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=ListIdentities&Version=2010-12-01",
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("<Code>MissingAuthenticationToken</Code>"));

    let ses = sdk_client(&double.url());
    runtime().block_on(async {
        let out = ses
            .get_identity_mail_from_domain_attributes()
            .identities("pending-reject.example.com")
            .identities("no-mail-from.example.com")
            .send()
            .await
            .unwrap();
        let attrs = out.mail_from_domain_attributes();
        let pending = &attrs["pending-reject.example.com"];
        assert_eq!(pending.mail_from_domain_status().as_str(), "Pending");
        assert_eq!(pending.behavior_on_mx_failure().as_str(), "RejectMessage");
        assert_eq!(attrs["no-mail-from.example.com"].mail_from_domain(), "");
    });
}

// ---------------------------------------------------------------- SESv2 (REST-JSON)

/// An SESv2 client for the double in `region`, configured in code (static
/// credentials, region, endpoint), so nothing on the machine is read and no request
/// leaves it; SDK retries are off, so each call is exactly one request.
fn sesv2_client_in(url: &str, region: &str) -> aws_sdk_sesv2::Client {
    use aws_sdk_sesv2::config::{retry::RetryConfig, BehaviorVersion, Region};
    let conf = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(test_credentials())
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sesv2::Client::from_conf(conf)
}

fn sesv2_client(url: &str) -> aws_sdk_sesv2::Client {
    sesv2_client_in(url, REGION)
}

/// One SESv2 request over plain HTTP, with an `Authorization` header the double
/// accepts (it reads the scope, it does not check signatures): to see the JSON as
/// sent, where the SDK would fill a missing field with false or 0.
fn raw_v2(double: &Double, method: &str, path: &str, body: &str) -> HttpResponse {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTESTTESTTESTTEST/20240101/{REGION}/ses/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    http(
        double.addr,
        method,
        path,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .expect("raw SESv2 request")
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", r.status, r.text()))
}

#[test]
fn v2_get_account_round_trips_every_field() {
    let double = Double::start(&["--rate", "0"]);
    let sesv2 = sesv2_client(&double.url());
    let rt = runtime();
    rt.block_on(async {
        let out = sesv2.get_account().send().await.expect("GetAccount");
        assert_eq!(out.enforcement_status(), Some("HEALTHY"));
        assert!(out.production_access_enabled());
        assert!(out.sending_enabled());
        assert!(!out.dedicated_ip_auto_warmup_enabled());
        let quota = out.send_quota().expect("SendQuota");
        assert_eq!(quota.max24_hour_send(), 50_000.0);
        assert_eq!(quota.max_send_rate(), 14.0);
        assert_eq!(quota.sent_last24_hours(), 0.0);
        let details = out.details().expect("Details");
        assert_eq!(details.mail_type(), Some(&MailType::Transactional));
        assert!(details.website_url().is_some());
        assert!(details.review_details().is_none(), "no review unless set");
        let vdm = out.vdm_attributes().expect("VdmAttributes");
        assert_eq!(vdm.vdm_enabled(), &FeatureStatus::Disabled);
    });

    double.control(
        "PUT",
        "/_double/account",
        r#"{"enforcement_status": "SHUTDOWN", "production_access_enabled": false,
            "sending_enabled": false, "max_24_hour_send": 200, "max_send_rate": 1,
            "sent_last_24_hours": 199.5, "review_status": "DENIED",
            "review_case_id": "case-42", "vdm_enabled": "ENABLED"}"#,
    );
    rt.block_on(async {
        let out = sesv2.get_account().send().await.expect("GetAccount");
        assert_eq!(out.enforcement_status(), Some("SHUTDOWN"));
        assert!(!out.production_access_enabled());
        assert!(!out.sending_enabled());
        let quota = out.send_quota().expect("SendQuota");
        assert_eq!(quota.max24_hour_send(), 200.0);
        assert_eq!(quota.max_send_rate(), 1.0);
        assert_eq!(quota.sent_last24_hours(), 199.5);
        let review = out
            .details()
            .and_then(|d| d.review_details())
            .expect("ReviewDetails");
        assert_eq!(review.status(), Some(&ReviewStatus::Denied));
        assert_eq!(review.case_id(), Some("case-42"));
        assert_eq!(
            out.vdm_attributes().map(|v| v.vdm_enabled()),
            Some(&FeatureStatus::Enabled)
        );
    });

    // Any enforcement status arrives as sent; the scope is the signing region's.
    double.control(
        "PUT",
        "/_double/account?region=eu-west-1",
        r#"{"enforcement_status": "SOMETHING_NEW"}"#,
    );
    rt.block_on(async {
        let eu = sesv2_client_in(&double.url(), "eu-west-1");
        let out = eu
            .get_account()
            .send()
            .await
            .expect("GetAccount in eu-west-1");
        assert_eq!(out.enforcement_status(), Some("SOMETHING_NEW"));
        assert!(out.sending_enabled(), "eu-west-1 keeps its own defaults");
    });
    let regions: Vec<String> = double.requests().into_iter().map(|r| r.region).collect();
    assert_eq!(regions, ["us-east-1", "us-east-1", "eu-west-1"]);
}

#[test]
fn v2_get_account_leaves_out_omitted_fields() {
    let double = Double::start(&["--rate", "0"]);
    double.control(
        "PUT",
        "/_double/account",
        r#"{"omit": ["EnforcementStatus", "ProductionAccessEnabled", "SendingEnabled",
                     "Max24HourSend", "Details", "VdmAttributes"]}"#,
    );
    let r = raw_v2(&double, "GET", "/v2/email/account", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = json_of(&r);
    for gone in [
        "EnforcementStatus",
        "ProductionAccessEnabled",
        "SendingEnabled",
        "Details",
        "VdmAttributes",
    ] {
        assert!(body.get(gone).is_none(), "{gone} left out: {body}");
    }
    assert!(body["SendQuota"].get("Max24HourSend").is_none(), "{body}");
    assert_eq!(body["SendQuota"]["MaxSendRate"], 14.0);
    assert_eq!(body["DedicatedIpAutoWarmupEnabled"], false);

    // What the SDK makes of it: its types' defaults, which is why the exporter
    // must read presence from the JSON.
    let sesv2 = sesv2_client(&double.url());
    runtime().block_on(async {
        let out = sesv2.get_account().send().await.expect("GetAccount");
        assert_eq!(out.enforcement_status(), None);
        assert!(!out.sending_enabled());
        assert!(!out.production_access_enabled());
        assert!(out.details().is_none());
        assert_eq!(out.send_quota().map(|q| q.max24_hour_send()), Some(0.0));
    });

    // SES's own name for the same field (`Enabled`) leaves SESv2's alone.
    double.control("PUT", "/_double/account", r#"{"omit": ["Enabled"]}"#);
    let body = json_of(&raw_v2(&double, "GET", "/v2/email/account", ""));
    assert_eq!(body["SendingEnabled"], true);
}

const ENTITIES: &str = r#"[
    {"reference": "arn:aws:ses:us-east-1:123456789012:configuration-set/a",
     "impact": "LOW", "customer_updated": 1700000000,
     "policy": "arn:aws:ses:us-east-1:aws:reputation-policy/standard"},
    {"reference": "arn:aws:ses:us-east-1:123456789012:configuration-set/b",
     "ses_status": "DISABLED", "ses_cause": "High bounce rate",
     "ses_updated": 1700000100.5, "impact": "HIGH"},
    {"reference": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
     "customer_status": "DISABLED", "customer_cause": "paused by us"},
    {"reference": "arn:aws:ses:us-east-1:123456789012:identity/ops@example.com",
     "customer_status": "REINSTATED", "aggregate": "REINSTATED", "impact": "HIGH"},
    {"reference": "arn:aws:ses:us-east-1:123456789012:configuration-set/c",
     "omit": ["AwsSesManagedStatus"]}
]"#;

#[test]
fn v2_lists_reputation_entities_in_pages_and_by_filter() {
    let double = Double::start(&["--rate", "0"]);
    double.control("PUT", "/_double/reputation-entities", ENTITIES);
    let stored =
        json_of(&http(double.addr, "GET", "/_double/reputation-entities", &[], b"").unwrap());
    assert_eq!(stored.as_array().map(Vec::len), Some(5));

    let sesv2 = sesv2_client(&double.url());
    runtime().block_on(async {
        // Two at a time: three pages, in the order they were set.
        let mut token = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = sesv2
                .list_reputation_entities()
                .page_size(2)
                .set_next_token(token)
                .send()
                .await
                .expect("ListReputationEntities");
            pages += 1;
            seen.extend(page.reputation_entities().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3);
        let refs: Vec<&str> = seen
            .iter()
            .filter_map(|e| e.reputation_entity_reference())
            .map(|r| r.rsplit(':').next().unwrap_or(r))
            .collect();
        assert_eq!(
            refs,
            [
                "configuration-set/a",
                "configuration-set/b",
                "identity/example.com",
                "identity/ops@example.com",
                "configuration-set/c"
            ]
        );

        let a = &seen[0];
        assert_eq!(a.reputation_entity_type(), Some(&ReputationEntityType::Resource));
        assert_eq!(
            a.reputation_management_policy(),
            Some("arn:aws:ses:us-east-1:aws:reputation-policy/standard")
        );
        assert_eq!(a.reputation_impact(), Some(&RecommendationImpact::Low));
        assert_eq!(a.sending_status_aggregate(), Some(&SendingStatus::Enabled));
        let customer = a.customer_managed_status().expect("CustomerManagedStatus");
        assert_eq!(customer.status(), Some(&SendingStatus::Enabled));
        assert_eq!(
            customer.last_updated_timestamp().map(|t| t.secs()),
            Some(1_700_000_000)
        );

        // SES disabled it: the aggregate follows; the timestamp keeps its fraction.
        let b = &seen[1];
        assert_eq!(b.sending_status_aggregate(), Some(&SendingStatus::Disabled));
        let ses = b.aws_ses_managed_status().expect("AwsSesManagedStatus");
        assert_eq!(ses.status(), Some(&SendingStatus::Disabled));
        assert_eq!(ses.cause(), Some("High bounce rate"));
        let t = ses.last_updated_timestamp().expect("LastUpdatedTimestamp");
        assert_eq!((t.secs(), t.subsec_nanos()), (1_700_000_100, 500_000_000));
        assert!(b.reputation_management_policy().is_none(), "not set");

        assert_eq!(seen[3].sending_status_aggregate(), Some(&SendingStatus::Reinstated));
        assert!(seen[4].aws_ses_managed_status().is_none(), "omitted");

        // Filters.
        let refs_of = |out: aws_sdk_sesv2::operation::list_reputation_entities::ListReputationEntitiesOutput| {
            out.reputation_entities()
                .iter()
                .filter_map(|e| e.reputation_entity_reference().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let disabled = sesv2
            .list_reputation_entities()
            .filter(ReputationEntityFilterKey::Status, "DISABLED")
            .send()
            .await
            .expect("by sending status");
        assert_eq!(
            refs_of(disabled),
            [
                "arn:aws:ses:us-east-1:123456789012:configuration-set/b",
                "arn:aws:ses:us-east-1:123456789012:identity/example.com"
            ]
        );
        let identities = sesv2
            .list_reputation_entities()
            .filter(
                ReputationEntityFilterKey::EntityReferencePrefix,
                "arn:aws:ses:us-east-1:123456789012:identity/",
            )
            .filter(ReputationEntityFilterKey::ReputationImpact, "HIGH")
            .filter(ReputationEntityFilterKey::EntityType, "RESOURCE")
            .send()
            .await
            .expect("by prefix, impact and type");
        assert_eq!(
            refs_of(identities),
            ["arn:aws:ses:us-east-1:123456789012:identity/ops@example.com"]
        );

        let err = sesv2
            .list_reputation_entities()
            .page_size(1001)
            .send()
            .await
            .expect_err("PageSize above 1000");
        assert_eq!(err.code(), Some("BadRequestException"));
    });

    // No entities in another scope; none by default.
    let other = sesv2_client_in(&double.url(), "eu-west-1");
    runtime().block_on(async {
        let out = other.list_reputation_entities().send().await.unwrap();
        assert!(out.reputation_entities().is_empty());
        assert!(out.next_token().is_none());
    });
}

#[test]
fn v2_get_email_identity_answers_verification_info_and_404() {
    let double = Double::start(&["--rate", "0"]);
    double.set_identity(
        "example.org",
        r#"{"mail_from_domain": "bounce.example.org", "status": "TemporaryFailure",
            "behavior": "RejectMessage", "dkim_enabled": true, "dkim_status": "Pending",
            "verification_status": "Failed", "verification_error_type": "HOST_NOT_FOUND",
            "verification_last_checked": 1700000000, "verification_last_success": 1690000000,
            "signing_origin": "AWS_SES_EU_WEST_1", "dkim_tokens": ["t1", "t2", "t3"]}"#,
    );
    double.set_identity(
        "ops+alerts@example.com",
        r#"{"verification_status": "Pending", "sending_enabled": true}"#,
    );
    let sesv2 = sesv2_client(&double.url());
    runtime().block_on(async {
        let out = sesv2
            .get_email_identity()
            .email_identity("example.org")
            .send()
            .await
            .expect("GetEmailIdentity");
        assert_eq!(out.identity_type(), Some(&IdentityType::Domain));
        assert_eq!(out.verification_status(), Some(&VerificationStatus::Failed));
        assert!(!out.verified_for_sending_status(), "not verified, not set");
        assert!(out.feedback_forwarding_status());
        let dkim = out.dkim_attributes().expect("DkimAttributes");
        assert!(dkim.signing_enabled());
        assert_eq!(dkim.status(), Some(&DkimStatus::Pending));
        assert_eq!(dkim.tokens(), ["t1", "t2", "t3"]);
        assert_eq!(
            dkim.signing_attributes_origin(),
            Some(&DkimSigningAttributesOrigin::AwsSesEuWest1)
        );
        assert_eq!(dkim.signing_hosted_zone(), Some("dkim.amazonses.com"));
        let mail_from = out.mail_from_attributes().expect("MailFromAttributes");
        assert_eq!(mail_from.mail_from_domain(), "bounce.example.org");
        assert_eq!(
            mail_from.mail_from_domain_status(),
            &MailFromDomainStatus::TemporaryFailure
        );
        assert_eq!(
            mail_from.behavior_on_mx_failure(),
            &BehaviorOnMxFailure::RejectMessage
        );
        let info = out.verification_info().expect("VerificationInfo");
        assert_eq!(info.error_type(), Some(&VerificationError::HostNotFound));
        assert_eq!(
            info.last_checked_timestamp().map(|t| t.secs()),
            Some(1_700_000_000)
        );
        assert_eq!(
            info.last_success_timestamp().map(|t| t.secs()),
            Some(1_690_000_000)
        );

        // An address, percent-encoded in the path ('+' and '@').
        let out = sesv2
            .get_email_identity()
            .email_identity("ops+alerts@example.com")
            .send()
            .await
            .expect("GetEmailIdentity of an address");
        assert_eq!(out.identity_type(), Some(&IdentityType::EmailAddress));
        assert_eq!(
            out.verification_status(),
            Some(&VerificationStatus::Pending)
        );
        assert!(out.verified_for_sending_status(), "as set");
        assert!(out.dkim_attributes().is_some_and(|d| d.tokens().is_empty()));
        assert!(out.verification_info().is_none(), "nothing to say");

        let err = sesv2
            .get_email_identity()
            .email_identity("nobody.example")
            .send()
            .await
            .expect_err("unknown identity");
        assert_eq!(err.code(), Some("NotFoundException"));
        assert!(err.into_service_error().is_not_found_exception());
    });

    // `omit` removes keys wherever they are in the JSON.
    double.set_identity(
        "omit.example",
        r#"{"verification_error_type": "TYPE_NOT_FOUND", "verification_last_checked": 1700000000,
            "omit": ["ErrorType", "SigningAttributesOrigin", "VerificationStatus"]}"#,
    );
    let body = json_of(&raw_v2(
        &double,
        "GET",
        "/v2/email/identities/omit.example",
        "",
    ));
    assert!(body.get("VerificationStatus").is_none(), "{body}");
    assert!(body["DkimAttributes"]
        .get("SigningAttributesOrigin")
        .is_none());
    assert!(body["VerificationInfo"].get("ErrorType").is_none());
    assert_eq!(
        body["VerificationInfo"]["LastCheckedTimestamp"],
        1_700_000_000
    );
    double.set_identity("omit.example", r#"{"omit": ["VerificationInfo"]}"#);
    let body = json_of(&raw_v2(
        &double,
        "GET",
        "/v2/email/identities/omit.example",
        "",
    ));
    assert!(body.get("VerificationInfo").is_none(), "{body}");

    let records: Vec<(String, u16, usize)> = double
        .requests()
        .into_iter()
        .map(|r| (r.action, r.status, r.identities))
        .collect();
    let expected = [(200, 1), (200, 1), (404, 1), (200, 1), (200, 1)];
    assert_eq!(records.len(), expected.len(), "{records:?}");
    for ((action, status, ids), (want_status, want_ids)) in records.iter().zip(expected) {
        assert_eq!(action, "GetEmailIdentity");
        assert_eq!((*status, *ids), (want_status, want_ids), "{records:?}");
    }
}

#[test]
fn v2_lists_email_identities_in_pages_of_1000() {
    let double = Double::start(&["--rate", "0", "--seed", "none", "--seed-count", "2500"]);
    double.set_identity("ops@example.com", r#"{"verification_status": "Pending"}"#);
    let sesv2 = sesv2_client(&double.url());
    runtime().block_on(async {
        let mut token = None;
        let mut names = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let page = sesv2
                .list_email_identities()
                .page_size(1000)
                .set_next_token(token)
                .send()
                .await
                .expect("ListEmailIdentities");
            sizes.push(page.email_identities().len());
            names.extend(
                page.email_identities()
                    .iter()
                    .filter_map(|i| i.identity_name().map(str::to_owned)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(sizes, [1000, 1000, 501]);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted, "a stable order, each identity once");

        let err = sesv2
            .list_email_identities()
            .page_size(1001)
            .send()
            .await
            .expect_err("PageSize 1001");
        assert_eq!(err.code(), Some("BadRequestException"));
        assert!(err.into_service_error().is_bad_request_exception());

        let addresses = sesv2
            .list_email_identities()
            .filter(IdentityFilterKey::IdentityType, "EMAIL_ADDRESS")
            .send()
            .await
            .expect("filtered");
        let [ops] = addresses.email_identities() else {
            panic!("one address: {addresses:?}");
        };
        assert_eq!(ops.identity_name(), Some("ops@example.com"));
        assert_eq!(ops.identity_type(), Some(&IdentityType::EmailAddress));
        assert_eq!(
            ops.verification_status(),
            Some(&VerificationStatus::Pending)
        );
        assert!(!ops.sending_enabled(), "not verified");
    });

    // The older wire form: GET with the page in the query string.
    let r = raw_v2(&double, "GET", "/v2/email/identities?PageSize=2", "");
    let body = json_of(&r);
    assert_eq!(body["EmailIdentities"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["NextToken"], "page-2");
    let r = raw_v2(&double, "GET", "/v2/email/identities?PageSize=1001", "");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-errortype"), Some("BadRequestException"));

    let statuses: Vec<(String, u16)> = double
        .requests()
        .into_iter()
        .map(|r| (r.action, r.status))
        .collect();
    let want: Vec<(String, u16)> = [200, 200, 200, 400, 200, 200, 400]
        .into_iter()
        .map(|s| ("ListEmailIdentities".to_owned(), s))
        .collect();
    assert_eq!(statuses, want);
}

#[test]
fn v2_throttles_with_429_and_takes_faults() {
    let double = Double::start(&["--rate", "1"]);
    let sesv2 = sesv2_client(&double.url());
    runtime().block_on(async {
        sesv2.get_account().send().await.expect("first GetAccount");
        let err = sesv2
            .get_account()
            .send()
            .await
            .expect_err("a second GetAccount within 1 s");
        assert_eq!(err.code(), Some("TooManyRequestsException"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
        assert!(err.into_service_error().is_too_many_requests_exception());
        // Per operation: another one has its own budget.
        sesv2
            .list_email_identities()
            .send()
            .await
            .expect("ListEmailIdentities has its own budget");
    });

    let double = Double::start(&["--rate", "0"]);
    let sesv2 = sesv2_client(&double.url());
    double.set_faults(r#"{"throttle_all": true, "actions": ["GetAccount"]}"#);
    let r = raw_v2(&double, "GET", "/v2/email/account", "");
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    assert!(json_of(&r)["message"].is_string(), "{}", r.text());

    double.set_faults(r#"{"access_denied": true, "actions": ["GetEmailIdentity"]}"#);
    runtime().block_on(async {
        let err = sesv2
            .get_email_identity()
            .email_identity("pending-reject.example.com")
            .send()
            .await
            .expect_err("access denied");
        assert_eq!(err.code(), Some("AccessDeniedException"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
        sesv2
            .list_reputation_entities()
            .send()
            .await
            .expect("the fault names another operation");
    });

    double.set_faults(r#"{"error_status": 503, "actions": ["ListReputationEntities"]}"#);
    runtime().block_on(async {
        let err = sesv2
            .list_reputation_entities()
            .send()
            .await
            .expect_err("injected 503");
        assert_eq!(err.code(), Some("ServiceUnavailable"));
    });

    let records: Vec<(String, u16, String)> = double
        .requests()
        .into_iter()
        .map(|r| (r.action, r.status, r.outcome))
        .collect();
    let want = [
        ("GetAccount", 429, "throttled"),
        ("GetEmailIdentity", 403, "client_error"),
        ("ListReputationEntities", 200, "ok"),
        ("ListReputationEntities", 503, "server_error"),
    ];
    let want: Vec<(String, u16, String)> = want
        .into_iter()
        .map(|(a, s, o)| (a.to_owned(), s, o.to_owned()))
        .collect();
    assert_eq!(records, want);
}

#[test]
fn v2_refuses_unsigned_and_unknown_requests() {
    let double = Double::start(&["--rate", "0"]);
    let r = http(double.addr, "GET", "/v2/email/account", &[], b"").unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    let r = raw_v2(&double, "DELETE", "/v2/email/account", "");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnknownOperationException")
    );
    let r = raw_v2(
        &double,
        "POST",
        "/v2/email/reputation/entities",
        "{not json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-errortype"), Some("BadRequestException"));
    let actions: Vec<String> = double.requests().into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            "GetAccount",
            "DELETE /v2/email/account",
            "ListReputationEntities"
        ]
    );
}
