//! A target loop that panics is restarted: meanwhile the other target keeps
//! updating, the failed one shows `aws_ses_exporter_up 0` with its last values still
//! served, and it recovers by itself. The panic is a hook in the scripted AWS double
//! (no emulator can make the exporter's own code panic), run through
//! the library's `run` on 127.0.0.1:0 like the binary runs it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ses_identity_exporter::aws::{Request, TargetAws};
use ses_identity_exporter::model::{BehaviorOnMxFailure, MailFromAttributes, MailFromStatus};
use ses_identity_exporter::testing::{mail_from_for_all, Scripted};

use common::in_process::{self, InProcess};
use common::{wait_for, Metrics};

const ACCOUNT: &str = "123456789012";

/// A scripted AWS that answers every identity as Success and panics once in a
/// MAIL FROM call after `panic_next` is set.
fn fake(region: &str, panic_next: &Arc<AtomicBool>) -> Arc<dyn TargetAws> {
    let aws = Scripted::new(region, ACCOUNT);
    let panic_next = Arc::clone(panic_next);
    aws.answer_with(move |request| {
        if matches!(request, Request::GetIdentityMailFromDomainAttributes { .. })
            && panic_next.swap(false, Ordering::SeqCst)
        {
            panic!("test hook: a bug in the target loop");
        }
        mail_from_for_all(request, |id| MailFromAttributes {
            domain: Some(format!("bounce.{id}")),
            status: Some(MailFromStatus::Success),
            behavior: BehaviorOnMxFailure::RejectMessage,
        })
    });
    aws
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
    let config = in_process::config(
        dir.path(),
        "config.yaml",
        "identities: [a.example.com]\ntargets:\n  - region: us-east-1\n  - region: eu-west-1\n",
        &["--no-collector.dns"],
    );
    let hook = Arc::new(AtomicBool::new(false));
    let east = fake("us-east-1", &Arc::new(AtomicBool::new(false)));
    let west = fake("eu-west-1", &hook);

    let running = InProcess::start(config, vec![east, west]);
    let scrape = || Metrics::parse(&running.scrape());
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

    running.shutdown();
}
