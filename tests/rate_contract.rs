//! The rate contract where it matters, at the server: no two requests of one
//! operation (per account, region and operation) arrive at SES closer than
//! `1 / --ses.rate`, whatever happens between the limiter letting a request go and
//! the request reaching SES. The double holds the first request of every new
//! connection 200 ms (a slow handshake or first packet), so a request that waited
//! for its slot can still arrive right behind the one before it, unless the limiter
//! spaces requests from the previous one's answer.

mod common;

use std::collections::BTreeMap;

use common::{Double, Exporter};

/// The server's clock and the arrival stamp are taken a few microseconds after the
/// request is read; allow the scheduler a few milliseconds on a busy machine.
const TOLERANCE_S: f64 = 0.003;

#[test]
fn arrivals_of_one_operation_are_never_closer_than_the_rate_even_after_a_slow_first_request() {
    let rate = 20.0;
    // 1,100 identities: two ListIdentities pages (1,000 a page) and 11 batches of
    // each identity collector; two collectors side by side need two connections.
    let double = Double::start(&["--seed", "none", "--seed-count", "1100", "--rate", "20"]);
    double.set_faults(r#"{"first_request_delay_ms": 200}"#);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &["--ses.rate", "20", "--collector.dkim"],
    );
    let m = exporter.wait_metrics("a complete first cycle", |m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
    });
    assert_eq!(m.get("aws_ses_exporter_identities"), Some(1100.0));
    // The first cycle runs at the ceiling, and says so.
    for op in [
        "GetIdentityMailFromDomainAttributes",
        "GetIdentityDkimAttributes",
    ] {
        let series = format!("aws_ses_exporter_ses_planned_request_rate{{operation=\"{op}\"}}");
        assert_eq!(m.get(&series), Some(rate), "{series}");
    }

    let requests = double.requests();
    let mut arrivals: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for r in &requests {
        arrivals
            .entry((r.account.clone(), r.region.clone(), r.action.clone()))
            .or_default()
            .push(r.t);
    }
    let spacing = 1.0 / rate;
    // Every operation's smallest gap first, so a failure shows them all.
    let mut closest = Vec::new();
    for (key, times) in &mut arrivals {
        times.sort_by(f64::total_cmp);
        let gap = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .fold(f64::INFINITY, f64::min);
        println!(
            "{}: smallest gap between arrivals {:.1} ms",
            key.2,
            gap * 1e3
        );
        closest.push((key.clone(), gap));
    }
    for (key, gap) in &closest {
        assert!(
            *gap >= spacing - TOLERANCE_S,
            "{key:?}: two requests arrived {:.1} ms apart, less than 1/{rate} s = {:.0} ms \
             (tolerance {:.0} ms); arrivals: {:?}",
            gap * 1e3,
            spacing * 1e3,
            TOLERANCE_S * 1e3,
            arrivals[key],
        );
    }
    let count = |action: &str| requests.iter().filter(|r| r.action == action).count();
    assert_eq!(count("ListIdentities"), 2, "two pages: {requests:?}");
    assert_eq!(count("GetIdentityMailFromDomainAttributes"), 11);
    assert_eq!(count("GetIdentityDkimAttributes"), 11);
    let throttled: Vec<_> = requests
        .iter()
        .filter(|r| r.outcome == "throttled")
        .collect();
    assert!(throttled.is_empty(), "throttled: {throttled:?}");
}
