//! The SES double's own contract, through the real SDK: what the exporter's tests rely
//! on it to enforce (the 100-identity limit, paging, its rate limit, signed requests).

mod common;

use aws_sdk_ses::error::ProvideErrorMetadata;

use common::{http, runtime, sdk_client, Double};

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
