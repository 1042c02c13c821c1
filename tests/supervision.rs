//! A target's poller that panics is restarted: meanwhile the other target keeps
//! updating, the failed one shows `aws_ses_exporter_up 0` with its last values still
//! served, and it recovers by itself. The panic is a test-only hook in a test double
//! of [`SesApi`] (no emulator can make the exporter's own code panic), run through
//! the library's [`run`] on 127.0.0.1:0 like the binary runs it.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use ses_identity_exporter::aws::{CallerIdentity, IdentityPage, SesApi, SesError};
use ses_identity_exporter::config::{self, Flags};
use ses_identity_exporter::model::{
    BehaviorOnMxFailure, DkimAttributes, IdentityType, MailFromAttributes, MailFromStatus,
    SendQuota, Verification,
};
use ses_identity_exporter::serve::web_config::{WebConfig, WebState};

use common::{get, wait_for, Metrics};

const ACCOUNT: &str = "123456789012";

/// Answers every identity as Success; panics once in `mail_from_attributes` when
/// `panic_next` is set.
#[derive(Clone)]
struct Fake {
    region: &'static str,
    panic_next: Arc<AtomicBool>,
}

impl SesApi for Fake {
    fn region(&self) -> &str {
        self.region
    }

    async fn caller_identity(&self) -> Result<CallerIdentity, SesError> {
        Ok(CallerIdentity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/test"),
        })
    }

    async fn mail_from_attributes(
        &self,
        identities: &[String],
    ) -> Result<HashMap<String, MailFromAttributes>, SesError> {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("test hook: a bug in the poller");
        }
        Ok(identities
            .iter()
            .map(|id| {
                let attrs = MailFromAttributes {
                    domain: Some(format!("bounce.{id}")),
                    status: Some(MailFromStatus::Success),
                    behavior: BehaviorOnMxFailure::RejectMessage,
                };
                (id.clone(), attrs)
            })
            .collect())
    }

    async fn dkim_attributes(
        &self,
        _identities: &[String],
    ) -> Result<HashMap<String, DkimAttributes>, SesError> {
        Ok(HashMap::new())
    }

    async fn verification_attributes(
        &self,
        _identities: &[String],
    ) -> Result<HashMap<String, Verification>, SesError> {
        Ok(HashMap::new())
    }

    async fn send_quota(&self) -> Result<SendQuota, SesError> {
        Err(SesError::Construction("not in this test".into()))
    }

    async fn account_sending_enabled(&self) -> Result<Option<bool>, SesError> {
        Err(SesError::Construction("not in this test".into()))
    }

    async fn list_identities(
        &self,
        _identity_type: Option<IdentityType>,
        _next_token: Option<String>,
    ) -> Result<IdentityPage, SesError> {
        Ok(IdentityPage::default())
    }
}

fn value(m: &Metrics, series: &str) -> Option<f64> {
    m.raw(series)
}

fn target(region: &str) -> String {
    common::target_labels(ACCOUNT, region)
}

#[test]
fn a_panicking_poller_is_restarted_and_the_other_target_keeps_updating() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        "identities: [a.example.com]\ntargets:\n  - region: us-east-1\n  - region: eu-west-1\n",
    )
    .unwrap();
    let flags = Flags::try_parse_from([
        "ses-identity-exporter",
        "--config.file",
        file.to_str().unwrap(),
        "--poll.interval",
        "1s",
        "--ses.rate",
        "50",
        "--no-collector.dns",
    ])
    .unwrap();
    let config = config::load(flags).unwrap();
    let east = Fake {
        region: "us-east-1",
        panic_next: Arc::default(),
    };
    let west = Fake {
        region: "eu-west-1",
        panic_next: Arc::default(),
    };
    let hook = Arc::clone(&west.panic_next);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        ses_identity_exporter::run(
            &config,
            WebState::fixed(WebConfig::default()),
            vec![east, west],
            vec![listener],
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let scrape = || Metrics::parse(&get(addr, "/metrics").text());
    let (east_l, west_l) = (target("us-east-1"), target("eu-west-1"));
    let up = |m: &Metrics, l: &str| value(m, &format!("aws_ses_exporter_up{{{l}}}"));
    let last = |m: &Metrics, l: &str| {
        value(
            m,
            &format!("aws_ses_exporter_last_success_timestamp_seconds{{{l}}}"),
        )
    };
    let status = |m: &Metrics, l: &str| {
        value(
            m,
            &format!(
                "aws_ses_identity_mail_from_status{{{l},identity=\"a.example.com\",status=\"Success\"}}"
            ),
        )
    };
    wait_for(Duration::from_secs(30), "both targets up", || {
        let m = scrape();
        (up(&m, &east_l) == Some(1.0) && up(&m, &west_l) == Some(1.0)).then_some(())
    });

    hook.store(true, Ordering::SeqCst);
    // The panic is noticed at once; the restart waits a second.
    let down = wait_for(
        Duration::from_secs(30),
        "the failed target to show 0",
        || {
            let m = scrape();
            (up(&m, &west_l) == Some(0.0)).then_some(m)
        },
    );
    assert_eq!(
        value(
            &down,
            "aws_ses_exporter_task_restarts_total{task=\"poller\"}"
        ),
        Some(1.0),
        "{}",
        down.text
    );
    assert_eq!(
        status(&down, &west_l),
        Some(1.0),
        "the failed target's last values are still served"
    );
    // The other target keeps updating meanwhile.
    let east_before = last(&down, &east_l).expect("east succeeded before");
    wait_for(
        Duration::from_secs(30),
        "the other target to update",
        || {
            let m = scrape();
            (last(&m, &east_l) > Some(east_before)).then_some(())
        },
    );
    // And the failed one recovers by itself, with its records.
    let back = wait_for(
        Duration::from_secs(30),
        "the failed target to recover",
        || {
            let m = scrape();
            (up(&m, &west_l) == Some(1.0)).then_some(m)
        },
    );
    assert_eq!(status(&back, &west_l), Some(1.0));

    let _ = stop_tx.send(());
    runtime
        .block_on(server)
        .expect("run ended")
        .expect("run succeeded");
}
