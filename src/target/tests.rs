//! The target loop with a scripted SES: the identity collectors' batching and
//! splitting as the loop runs them, retries through the limiters, discovery, the
//! schedule and pacing.

use super::retry::MAX_ATTEMPTS_OTHER;
use super::*;
use crate::aws::{IdentityPage, Response};
use crate::model::{BehaviorOnMxFailure, MailFromAttributes, MailFromStatus, Observation};
use crate::render::Exposition;
use crate::testing::{Call, Scripted};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::sleep;

fn scripted() -> Arc<Scripted> {
    Scripted::new("us-east-1", "123456789012")
}

/// The MAIL FROM calls the double received: when, and the batch.
fn mail_from_calls(script: &Scripted) -> Vec<Call> {
    script.calls(Operation::GetIdentityMailFromDomainAttributes)
}

fn mail_from_answer(answer: HashMap<String, MailFromAttributes>) -> Response {
    Response::GetIdentityMailFromDomainAttributes(answer)
}

fn mail_from_error(script: &Scripted, err: SesError) {
    script.then_result(Operation::GetIdentityMailFromDomainAttributes, Err(err));
}

fn ok(domain: &str, status: MailFromStatus) -> MailFromAttributes {
    MailFromAttributes {
        domain: Some(domain.into()),
        status: Some(status),
        behavior: BehaviorOnMxFailure::RejectMessage,
    }
}

/// What the target's collectors published, as a scrape would read it.
struct Shared {
    publisher: Arc<Publisher>,
    telemetry: Arc<Telemetry>,
    facts: Arc<Facts>,
}

impl Shared {
    fn exposition(&self) -> Arc<Exposition> {
        self.publisher.subscribe().body().exposition
    }

    fn is_ready(&self) -> bool {
        self.publisher.subscribe().is_ready()
    }
}

fn new_target(script: &Arc<Scripted>, fixed: &[impl AsRef<str>]) -> (Target, Arc<Shared>) {
    new_target_with(script, fixed, &["mail_from"])
}

/// A target with the collectors `collectors` on.
fn new_target_with(
    script: &Arc<Scripted>,
    fixed: &[impl AsRef<str>],
    collectors: &[&str],
) -> (Target, Arc<Shared>) {
    new_target_with_options(script, fixed, collectors, CollectorOptions::default())
}

/// A target with the collectors `collectors` on, and their options.
fn new_target_with_options(
    script: &Arc<Scripted>,
    fixed: &[impl AsRef<str>],
    collectors: &[&str],
    options: CollectorOptions,
) -> (Target, Arc<Shared>) {
    let shared = Arc::new(Shared {
        publisher: Arc::new(Publisher::new()),
        telemetry: Arc::new(Telemetry::new(60.0).unwrap()),
        facts: Arc::new(Facts::new()),
    });
    let settings = TargetSettings {
        slot: 0,
        region: "us-east-1".into(),
        provisional_account: String::new(),
        fixed: fixed.iter().map(|s| s.as_ref().to_owned()).collect(),
        discovery: None,
        poll_interval: Duration::from_secs(60),
        rate: 1.0,
        pacing: crate::config::DEFAULT_SES_PACING,
        timeout: Duration::from_secs(10),
        collectors: collectors
            .iter()
            .filter_map(|name| crate::collector::Registration::position(name))
            .collect(),
        options,
    };
    let aws: Arc<dyn TargetAws> = Arc::clone(script) as Arc<dyn TargetAws>;
    shared.publisher.add_target(0);
    shared.publisher.started();
    let wiring = Wiring {
        publisher: Arc::clone(&shared.publisher),
        telemetry: Arc::clone(&shared.telemetry),
        limiters: Arc::new(Limiters::default()),
        facts: Arc::clone(&shared.facts),
    };
    (Target::new(aws, settings, &wiring), shared)
}

/// A per-target health value of the one target, as a scrape shows it.
fn target_value(shared: &Shared, name: &str) -> i64 {
    let text = shared.telemetry.render();
    let prefix = format!("{name}{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .expect("a number")
}

/// `n` identities `d000.example.com`, `d001.example.com`, ...
fn domains(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i:03}.example.com")).collect()
}

fn assert_no_overruns(shared: &Shared) {
    assert_eq!(
        target_value(shared, "aws_ses_exporter_poll_overruns_total"),
        0
    );
}

/// A target watching `fixed` whose first MAIL FROM answer holds one identity.
fn answering(
    identity: &str,
    attributes: MailFromAttributes,
    fixed: &[&str],
) -> (Arc<Scripted>, Target, Arc<Shared>) {
    let script = scripted();
    script.then_mail_from([(identity.to_owned(), attributes)]);
    let (p, shared) = new_target(&script, fixed);
    (script, p, shared)
}

/// Runs the target's loop for `time` (paused time: at once), then stops it.
async fn run_for(mut p: Target, time: Duration) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { p.run(rx).await });
    sleep(time).await;
    tx.send(true).unwrap();
    task.await.unwrap();
}

fn throttled() -> SesError {
    SesError::Throttled {
        code: "Throttling".into(),
        message: "Rate exceeded".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_identity_is_split_out_and_the_other_99_keep_updating() {
    let script = scripted();
    let names: Vec<String> = (0..100).map(|i| format!("id-{i:03}.example.com")).collect();
    let bad = names[37].clone();
    script.refuse_identity(Some(&bad));
    let (mut p, shared) = new_target(&script, &names);

    p.cycle().await;
    let calls = mail_from_calls(&script).len();
    assert!(
        calls <= 1 + 2 * 7,
        "{calls} calls to find one identity in 100"
    );
    assert_eq!(p.records()[&bad].observation, Observation::Rejected);
    let others = p.records().iter().filter(|(id, _)| **id != bad).count();
    assert_eq!(others, 99, "the other 99 were fetched");
    assert_eq!(
        target_value(&shared, "aws_ses_exporter_up"),
        1,
        "a rejected name is not an outage"
    );
    let text = shared.exposition().text();
    assert!(text.contains(&format!(
        "aws_ses_identity_rejected{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"{bad}\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "aws_ses_identity_exists{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"{bad}\"}} 0\n"
    )));

    // Next cycle: the bad one alone, the 99 in one batch.
    script.clear_calls();
    p.cycle().await;
    let calls = mail_from_calls(&script);
    let sizes: Vec<usize> = calls.iter().map(|c| c.identities.len()).collect();
    assert_eq!(sizes, vec![1, 99]);

    // Fixed at SES: it recovers by itself.
    script.refuse_identity(None);
    script.then_mail_from([(bad.clone(), ok("mail.x", MailFromStatus::Success))]);
    p.cycle().await;
    assert!(matches!(
        p.records()[&bad].observation,
        Observation::Present(_)
    ));
    assert!(!shared
        .exposition()
        .text()
        .contains("aws_ses_identity_rejected"));
}

#[tokio::test(start_paused = true)]
async fn retries_are_spaced_from_the_end_of_the_attempt_before_timed_out_ones_too() {
    let script = scripted();
    let (mut p, _) = new_target(&script, &["example.com"]);
    p.cycle().await; // resolves the account: the limiters exist
    let attempts = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&attempts);
    script.answer_with(move |_| {
        let n = {
            let mut n = counter.lock().unwrap();
            *n += 1;
            *n
        };
        let answer: futures_util::future::BoxFuture<'static, _> = match n {
            // 300 ms, then a 503: retried after a backoff shorter than the spacing,
            // so the limiter decides when.
            1 => Box::pin(async {
                sleep(Duration::from_millis(300)).await;
                Err(SesError::Server {
                    status: 503,
                    message: "unavailable".into(),
                })
            }),
            // No answer: the target's guard gives up on it.
            2 => Box::pin(std::future::pending()),
            _ => return None,
        };
        Some(answer)
    });
    script.clear_calls();
    let door = p.door();
    let aws: &dyn Aws = &door;
    let result = aws.mail_from_attributes(&["example.com".to_owned()]).await;
    assert!(result.is_ok());
    let starts: Vec<Instant> = mail_from_calls(&script).iter().map(|c| c.at).collect();
    assert_eq!(starts.len(), 3);
    let spacing = Duration::from_millis(1020);
    let guard = p.calls.attempt_guard;
    assert_eq!(starts[1] - starts[0], Duration::from_millis(300) + spacing);
    assert_eq!(starts[2] - starts[1], guard + spacing);
}

#[tokio::test(start_paused = true)]
async fn batches_hold_at_most_100_and_retries_pass_the_limiter() {
    let script = scripted();
    let ids = domains(250);
    script.then(mail_from_answer(HashMap::new()));
    mail_from_error(&script, throttled());
    script.then(mail_from_answer(HashMap::new()));
    script.then(mail_from_answer(HashMap::new()));
    let (mut p, shared) = new_target(&script, &ids);
    p.cycle().await;
    let calls = mail_from_calls(&script);
    assert_eq!(
        calls.iter().map(|c| c.identities.len()).collect::<Vec<_>>(),
        vec![100, 100, 100, 50]
    );
    for pair in calls.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1));
    }
    // The throttled batch was retried in the same cycle: every identity is fresh.
    assert_eq!(p.records().len(), 250);
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
    assert!(shared.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_keeps_the_last_values() {
    let failed = ok("mail.example.com", MailFromStatus::Failed);
    let (script, mut p, shared) = answering("example.com", failed, &["example.com"]);
    p.cycle().await;
    let before = p.records().clone();
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);

    for _ in 0..MAX_ATTEMPTS_OTHER {
        mail_from_error(
            &script,
            SesError::Server {
                status: 503,
                message: "unavailable".into(),
            },
        );
    }
    p.cycle().await;
    assert_eq!(p.records(), &before, "values and refresh time kept");
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 0);
    let text = shared.exposition().text();
    assert!(text.contains(
        "aws_ses_identity_mail_from_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"example.com\",status=\"Failed\"} 1"
    ));
}

#[tokio::test(start_paused = true)]
async fn omitted_identities_are_missing_and_domains_match_any_case() {
    // SES echoes the domain in another case.
    let success = ok("mail.example.com", MailFromStatus::Success);
    let listed = ["example.com", "gone.example.org"];
    let (_script, mut p, _) = answering("Example.COM", success, &listed);
    p.cycle().await;
    assert!(matches!(
        p.records()["example.com"].observation,
        Observation::Present(_)
    ));
    assert_eq!(
        p.records()["gone.example.org"].observation,
        Observation::Missing
    );
}

#[tokio::test(start_paused = true)]
async fn a_discovered_identity_ses_leaves_out_is_dropped_a_listed_one_is_missing() {
    let script = scripted();
    script.then(Response::ListIdentities(IdentityPage {
        identities: vec!["found.example.com".into(), "gone.example.com".into()],
        next_token: None,
    }));
    let both: HashMap<_, _> = [
        (
            "found.example.com".to_string(),
            ok("m.found", MailFromStatus::Success),
        ),
        (
            "gone.example.com".to_string(),
            ok("m.gone", MailFromStatus::Success),
        ),
    ]
    .into();
    let found_only: HashMap<_, _> = [(
        "found.example.com".to_string(),
        ok("m.found", MailFromStatus::Success),
    )]
    .into();
    script.then(mail_from_answer(both));
    script.then(mail_from_answer(found_only));
    let (mut p, shared) = new_target(&script, &["listed.example.com"]);
    p.settings.discovery = Some(Discovery {
        identity_type: crate::config::DiscoveryType::All,
        include: Vec::new(),
        exclude: Vec::new(),
        interval: Duration::from_secs(3600),
    });
    p.cycle().await;
    assert!(p.records().contains_key("gone.example.com"));
    // Deleted at SES before the next discovery is due.
    p.cycle().await;
    assert!(
        !p.records().contains_key("gone.example.com"),
        "dropped at once"
    );
    assert_eq!(
        p.records()["listed.example.com"].observation,
        Observation::Missing,
        "a listed identity SES leaves out is reported missing"
    );
    let text = shared.exposition().text();
    assert!(!text.contains("identity=\"gone.example.com\""), "{text}");
    assert!(text.contains("aws_ses_identity_exists{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"listed.example.com\"} 0\n"));
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_retried() {
    let script = scripted();
    mail_from_error(
        &script,
        SesError::Client {
            code: "AccessDenied".into(),
            status: 403,
            message: "no".into(),
        },
    );
    let (mut p, shared) = new_target(&script, &["example.com"]);
    p.cycle().await;
    assert_eq!(mail_from_calls(&script).len(), 1);
    assert!(p.records().is_empty(), "never fetched, so no series");
    assert!(!shared.is_ready());
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_cycle_starts_the_next_at_once_and_is_counted() {
    let script = scripted();
    // 250 identities at 1 request/s: a cycle takes about 3 s, the interval is 1 s.
    let ids = domains(250);
    let (mut p, shared) = new_target(&script, &ids);
    p.settings.poll_interval = Duration::from_secs(1);
    run_for(p, Duration::from_secs(20)).await;
    let calls = mail_from_calls(&script);
    // Back to back: every call about 1.02 s after the previous, no idle gap.
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_secs(1) && gap < Duration::from_millis(1100),
            "{gap:?}"
        );
    }
    assert!(calls.len() >= 18, "{} calls in 20 s", calls.len());
    assert!(target_value(&shared, "aws_ses_exporter_poll_overruns_total") >= 5);
}

#[tokio::test(start_paused = true)]
async fn cycles_run_start_to_start() {
    let script = scripted();
    let (p, shared) = new_target(&script, &["example.com"]);
    run_for(p, Duration::from_secs(185)).await;
    let calls = mail_from_calls(&script);
    // Cycles at 0, 60, 120 and 180 s.
    assert_eq!(calls.len(), 4);
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_secs(60) && gap < Duration::from_millis(60_100),
            "{gap:?}"
        );
    }
    assert_no_overruns(&shared);
}

#[tokio::test(start_paused = true)]
async fn collectors_of_a_target_run_side_by_side_each_on_its_own_limiter() {
    let script = scripted();
    let ids = domains(300);
    let (mut p, shared) = new_target_with(
        &script,
        &ids,
        &["mail_from", "dkim", "verification", "quota"],
    );
    let started = Instant::now();
    p.cycle().await;
    // 3 batches per identity collector: about 2 s at 1 request/s, not 6 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    let text = shared.exposition().text();
    assert!(text.contains("aws_ses_send_quota_max_emails{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"} 200\n"));
    assert!(text.contains("aws_ses_account_sending_enabled{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"} 1\n"));
    // The quota collector plans one call of each operation per 60 s cycle.
    let quota_plan = planned(&shared, "123456789012", Operation::GetSendQuota)
        .expect("a planned rate for GetSendQuota");
    assert!((quota_plan - 1.0 / 60.0).abs() < 1e-9, "{quota_plan}");
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
}

/// The planned request rate of the one target's MAIL FROM operation.
fn planned_rate(shared: &Shared) -> f64 {
    planned(
        shared,
        "123456789012",
        Operation::GetIdentityMailFromDomainAttributes,
    )
    .expect("a planned rate of the resolved target")
}

/// The planned request rate of `op` of the one target under `account`, if exported.
fn planned(shared: &Shared, account: &str, op: Operation) -> Option<f64> {
    let prefix = format!(
        "aws_ses_exporter_ses_planned_request_rate{{aws_account_id=\"{account}\",aws_region=\"us-east-1\",operation=\"{}\"}} ",
        op.as_str()
    );
    shared
        .telemetry
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
        .map(|v| v.parse().expect("a number"))
}

/// Runs one cycle and returns the gaps between the starts of its calls.
async fn cycle_gaps(p: &mut Target, script: &Scripted) -> Vec<Duration> {
    script.clear_calls();
    p.cycle().await;
    let calls = mail_from_calls(script);
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// Runs the target on its schedule for `seconds` and returns the gaps between the
/// starts of the calls of each cycle (cycles start every 60 s).
async fn gaps_per_cycle(mut p: Target, script: &Scripted, seconds: u64) -> Vec<Vec<Duration>> {
    let t0 = Instant::now();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { p.run(rx).await });
    sleep(Duration::from_secs(seconds)).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    let calls = mail_from_calls(script);
    let mut cycles: Vec<Vec<Instant>> = vec![Vec::new(); seconds.div_ceil(60) as usize];
    for call in calls.iter() {
        cycles[((call.at - t0).as_secs() / 60) as usize].push(call.at);
    }
    cycles
        .iter()
        .map(|c| c.windows(2).map(|w| w[1] - w[0]).collect())
        .collect()
}

fn assert_about(gaps: &[Duration], expected: Duration, what: &str) {
    // A paused clock still wakes timers on whole milliseconds.
    let slack = Duration::from_millis(5);
    assert!(
        gaps.iter()
            .all(|g| *g >= expected && *g <= expected + slack),
        "{what}: gaps {gaps:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_pacing_the_batches_of_later_cycles_spread_over_most_of_the_interval() {
    let script = scripted();
    let ids = domains(500);
    let (p, shared) = new_target(&script, &ids);
    assert_eq!(p.settings.pacing, 0.8);
    assert_eq!(p.settings.poll_interval, Duration::from_secs(60));
    let ceiling = Duration::from_millis(1020);
    // The second cycle's second batch is throttled once.
    for _ in 0..6 {
        script.then(mail_from_answer(HashMap::new()));
    }
    mail_from_error(&script, throttled());
    let planned = Arc::clone(&shared);
    let watch_plan = tokio::spawn(async move {
        // Halfway through each cycle, what the metric says.
        sleep(Duration::from_secs(30)).await;
        let first = planned_rate(&planned);
        sleep(Duration::from_secs(60)).await;
        (first, planned_rate(&planned))
    });
    let cycles = gaps_per_cycle(p, &script, 110).await;

    // The first cycle: at the ceiling, so the exporter is ready in about 4 s.
    assert_eq!(cycles[0].len(), 4, "5 batches");
    assert_about(&cycles[0], ceiling, "first cycle");

    // The second: 5 batches over 0.8 x 60 s, 9.6 s apart. The throttled batch is
    // retried after its backoff, through the limiter only, and does not move the
    // plan of the batches after it.
    let gaps = &cycles[1];
    assert_eq!(gaps.len(), 5, "5 batches and one retry: {gaps:?}");
    let retry = gaps[1];
    assert!(
        retry >= ceiling && retry < Duration::from_secs(2),
        "the retry waits for its backoff and the limiter, not the plan: {retry:?}"
    );
    let planned: Vec<Duration> = [gaps[0], gaps[1] + gaps[2], gaps[3], gaps[4]].into();
    assert_about(&planned, Duration::from_millis(9600), "second cycle");

    let (first, second) = watch_plan.await.unwrap();
    assert_eq!(first, 1.0, "the ceiling, --ses.rate");
    assert!((second - 5.0 / 48.0).abs() < 1e-9, "{second}");
    assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
    assert_no_overruns(&shared);
}

#[tokio::test(start_paused = true)]
async fn without_pacing_every_cycle_runs_at_the_ceiling() {
    let script = scripted();
    let ids = domains(500);
    let (mut p, shared) = new_target(&script, &ids);
    p.settings.pacing = 0.0;
    for cycle in ["first", "second", "third"] {
        let gaps = cycle_gaps(&mut p, &script).await;
        assert_eq!(gaps.len(), 4);
        assert_about(&gaps, Duration::from_millis(1020), cycle);
        assert_eq!(planned_rate(&shared), 1.0);
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_cycle_after_the_account_resolves_runs_at_the_ceiling() {
    let script = scripted();
    script.refuse_sts(1);
    let ids = domains(300);
    let (p, shared) = new_target(&script, &ids);
    assert_eq!(planned_rate_or_zero(&shared), 0.0, "nothing planned yet");
    let cycles = gaps_per_cycle(p, &script, 170).await;
    assert!(cycles[0].is_empty(), "STS refused: no SES call");
    assert_eq!(cycles[1].len(), 2);
    assert_about(
        &cycles[1],
        Duration::from_millis(1020),
        "first cycle with the account",
    );
    assert_eq!(cycles[2].len(), 2);
    assert_about(&cycles[2], Duration::from_secs(16), "paced: 0.8 x 60 s / 3");
    assert!((planned_rate(&shared) - 3.0 / 48.0).abs() < 1e-9);
}

/// The planned rate under the provisional (empty) account, before STS answered.
fn planned_rate_or_zero(shared: &Shared) -> f64 {
    planned(shared, "", Operation::GetIdentityMailFromDomainAttributes).unwrap_or(0.0)
}

#[tokio::test]
async fn answers_landing_during_a_render_wait_and_are_not_lost() {
    let script = scripted();
    let (mut p, shared) = new_target(&script, &["a.example.com", "b.example.com"]);
    p.cycle().await; // resolves the account; both identities come back Missing
    let resolved = p.resolved.clone().expect("resolved");
    let watched = Arc::clone(&p.watched);
    let position = crate::collector::Registration::position("mail_from").expect("registered");
    let mut collector =
        crate::collector::identity::Batched::<crate::collector::mail_from::MailFrom>::new(Outlet {
            publisher: Arc::clone(&shared.publisher),
            collector: position,
            facts: Arc::new(Facts::new()),
            options: crate::collector::CollectorOptions::default(),
        });
    // Unpaced: the plan does not matter to `apply` and `publish`.
    let door = p.door();
    let ctx = context(
        &door,
        &p.health,
        &p.settings,
        &p.fixed,
        &watched,
        &resolved,
        false,
        &p.findings,
    );
    let c = &mut collector;
    let batch = ["a.example.com".to_string(), "b.example.com".to_string()];
    let first: HashMap<_, _> = [(
        "a.example.com".to_string(),
        ok("m.a", MailFromStatus::Success),
    )]
    .into();
    c.apply(&ctx, &batch, &first, SystemTime::now());
    assert!(c.pending.is_empty(), "no render: written in place");

    // A render holds the records: the next answers wait instead of copying them.
    let render = Arc::clone(&c.records);
    let second: HashMap<_, _> = [(
        "a.example.com".to_string(),
        ok("m.a", MailFromStatus::Failed),
    )]
    .into();
    c.apply(&ctx, &batch, &second, SystemTime::now());
    assert_eq!(c.pending.len(), 2);
    assert!(Arc::ptr_eq(&render, &c.records), "not copied");
    drop(render);

    c.publish(&ctx).await;
    assert!(c.pending.is_empty());
    let a = &c.records["a.example.com"].observation;
    assert!(matches!(a, Observation::Present(x) if x.status == Some(MailFromStatus::Failed)));
    assert_eq!(c.records["b.example.com"].observation, Observation::Missing);
    assert!(shared.exposition().text().contains(
        "aws_ses_identity_mail_from_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"a.example.com\",status=\"Failed\"} 1"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_retired_target_takes_its_facts_parts_and_health_series_with_it() {
    let script = scripted();
    script.then_mail_from([(
        "example.com".to_owned(),
        ok("mail.example.com", MailFromStatus::Success),
    )]);
    let (mut p, shared) = new_target(&script, &["example.com"]);
    let facts = Arc::clone(&p.facts);
    // Read, as the dns collector reads them (without a reader none are kept).
    let rx = facts.subscribe();
    let id = TargetId::new("123456789012", "us-east-1");
    p.cycle().await;
    assert_eq!(
        rx.borrow()[&id]["example.com"]
            .mail_from
            .as_ref()
            .and_then(|m| m.domain.as_deref()),
        Some("mail.example.com")
    );
    assert!(shared
        .exposition()
        .text()
        .contains("identity=\"example.com\""));
    p.retire().await;
    assert!(rx.borrow().is_empty(), "facts left behind");
    assert_eq!(shared.exposition().text(), "", "parts left behind");
    assert!(
        !shared
            .telemetry
            .render()
            .contains("aws_account_id=\"123456789012\""),
        "health series left behind"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_takes_over_when_the_target_it_repeats_goes() {
    // Two targets that both resolve to one account and region, on one wiring.
    let script = scripted();
    script.answer_with(|request| {
        crate::testing::mail_from_for_all(request, |_| {
            ok("mail.example.com", MailFromStatus::Success)
        })
    });
    let (mut first, shared) = new_target(&script, &["example.com"]);
    let wiring = Wiring {
        publisher: Arc::clone(&shared.publisher),
        telemetry: Arc::clone(&shared.telemetry),
        limiters: Arc::clone(&first.all_limiters),
        facts: Arc::clone(&first.facts),
    };
    let settings = TargetSettings {
        slot: 1,
        // (Target::new takes the list out of its settings.)
        fixed: vec!["example.com".to_owned()],
        ..first.settings.clone()
    };
    shared.publisher.add_target(1);
    let mut second = Target::new(Arc::clone(&script) as Arc<dyn TargetAws>, settings, &wiring);
    first.cycle().await;
    second.cycle().await;
    assert!(second.duplicate.is_some());
    let duplicates = |shared: &Shared| {
        shared.telemetry.render().lines().find_map(|l| {
            l.strip_prefix("aws_ses_exporter_duplicate_targets ")
                .map(str::to_owned)
        })
    };
    assert_eq!(duplicates(&shared).as_deref(), Some("1"));
    assert_eq!(
        target_value(&shared, "aws_ses_exporter_up"),
        1,
        "the first's"
    );

    first.retire().await;
    assert!(!shared
        .exposition()
        .text()
        .contains("identity=\"example.com\""));
    second.cycle().await;
    assert!(
        second.duplicate.is_none(),
        "took the account and region over"
    );
    assert_eq!(duplicates(&shared).as_deref(), Some("0"));
    assert_eq!(
        target_value(&shared, "aws_ses_exporter_up"),
        1,
        "the second's"
    );
    let text = shared.exposition().text();
    assert!(text.contains(
        "aws_ses_identity_mail_from_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"example.com\",status=\"Success\"} 1"
    ), "{text}");
}

/// A `ListEmailIdentities` hook over `all` (sorted), 1,000 a page; the page whose
/// number is `fail_page` fails (a server error) instead.
fn listing(
    all: Arc<Vec<String>>,
    status: fn(&str) -> &'static str,
    fail_page: Option<usize>,
) -> impl Fn(
    &crate::aws::Request<'_>,
) -> Option<futures_util::future::BoxFuture<'static, Result<Response, SesError>>>
       + Send
       + Sync
       + 'static {
    use crate::model::{EmailIdentityPage, Verification, VerificationStatus};
    move |request| {
        let crate::aws::Request::ListEmailIdentities { next_token } = request else {
            return None;
        };
        let start: usize = next_token.as_deref().map_or(0, |t| t.parse().unwrap());
        if fail_page == Some(start / 1000) {
            return Some(Box::pin(std::future::ready(Err(SesError::Server {
                status: 500,
                message: "boom".into(),
            }))));
        }
        let end = (start + 1000).min(all.len());
        let page = EmailIdentityPage {
            identities: all[start..end]
                .iter()
                .map(|id| {
                    let status = VerificationStatus::parse_v2(status(id));
                    (
                        id.clone(),
                        Verification {
                            status,
                            token: None,
                        },
                    )
                })
                .collect(),
            next_token: (end < all.len()).then(|| end.to_string()),
        };
        Some(Box::pin(std::future::ready(Ok(
            Response::ListEmailIdentities(page),
        ))))
    }
}

fn list_source() -> CollectorOptions {
    CollectorOptions {
        verification_source: crate::collector::VerificationSource::List,
        ..CollectorOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn verification_of_10000_identities_lists_in_10_calls_with_v1_label_values() {
    let script = scripted();
    let all: Vec<String> = (0..10_000)
        .map(|i| format!("d{i:05}.example.com"))
        .collect();
    script.answer_with(listing(
        Arc::new(all.clone()),
        |id| {
            if id == "d00042.example.com" {
                "PENDING"
            } else {
                "SUCCESS"
            }
        },
        None,
    ));
    let (mut p, shared) = new_target_with_options(&script, &all, &["verification"], list_source());
    p.cycle().await;
    assert_eq!(script.calls(Operation::ListEmailIdentities).len(), 10);
    assert!(script
        .calls(Operation::GetIdentityVerificationAttributes)
        .is_empty());
    let text = shared.exposition().text();
    assert!(text.contains("aws_ses_identity_verification_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"d00042.example.com\",status=\"Pending\"} 1\n"));
    assert!(text.contains("identity=\"d09999.example.com\",status=\"Success\"} 1\n"));
    // The request series is the listing's, not the batches'.
    let requests = shared.telemetry.render();
    assert!(
        requests.contains("operation=\"ListEmailIdentities\",outcome=\"success\"} 10\n"),
        "{requests}"
    );
    assert!(!requests.contains("operation=\"GetIdentityVerificationAttributes\""));
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_fails_half_way_keeps_the_unlisted_identities_last_values() {
    let script = scripted();
    let all: Vec<String> = (0..2_500).map(|i| format!("d{i:05}.example.com")).collect();
    script.answer_with(listing(Arc::new(all.clone()), |_| "SUCCESS", None));
    let (mut p, shared) = new_target_with_options(&script, &all, &["verification"], list_source());
    p.cycle().await;
    let first_refresh = refreshed(&shared.exposition().text(), "d02400.example.com");
    tokio::time::advance(Duration::from_secs(60)).await;
    // Now everything fails verification, but the third page fails.
    script.answer_with(listing(Arc::new(all.clone()), |_| "FAILED", Some(2)));
    p.cycle().await;
    let text = shared.exposition().text();
    assert!(text.contains("identity=\"d00000.example.com\",status=\"Failed\"} 1\n"));
    // On the unread page: still the last answer (not dropped, not invented), and its
    // refresh time has not moved: its age shows.
    assert!(
        text.contains("identity=\"d02400.example.com\",status=\"Success\"} 1\n"),
        "kept"
    );
    assert_eq!(refreshed(&text, "d02400.example.com"), first_refresh);
    assert_ne!(refreshed(&text, "d00000.example.com"), first_refresh);
}

/// An identity's verification refresh time, as written.
fn refreshed(text: &str, id: &str) -> String {
    let prefix = format!("aws_ses_identity_verification_last_refresh_timestamp_seconds{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"{id}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no refresh time of {id}"))
}

#[tokio::test(start_paused = true)]
async fn reasons_explain_only_the_unhealthy_within_the_budget_oldest_first() {
    use crate::model::{EmailIdentity, Verification, VerificationStatus};
    let script = scripted();
    let all = domains(40);
    // 30 identities fail verification, 10 succeed.
    let failed = |id: &str| id < "d030";
    script.answer_with(move |request| match request {
        crate::aws::Request::GetIdentityVerificationAttributes { identities } => {
            let answer = identities
                .iter()
                .map(|id| {
                    let status = if failed(id) {
                        VerificationStatus::Failed
                    } else {
                        VerificationStatus::Success
                    };
                    (
                        id.clone(),
                        Verification {
                            status,
                            token: None,
                        },
                    )
                })
                .collect();
            Some(Box::pin(std::future::ready(Ok(
                Response::GetIdentityVerificationAttributes(answer),
            ))))
        }
        crate::aws::Request::GetEmailIdentity { .. } => Some(Box::pin(std::future::ready(Ok(
            Response::GetEmailIdentity(EmailIdentity {
                verification_status: Some(VerificationStatus::Failed),
                error_type: Some("TYPE_NOT_FOUND".into()),
                last_checked: Some(1_765_000_000_000),
                ..EmailIdentity::default()
            }),
        )))),
        _ => None,
    });
    let options = CollectorOptions {
        reasons_per_cycle: 20,
        ..CollectorOptions::default()
    };
    let (mut p, shared) = new_target_with_options(
        &script,
        &all,
        &["verification", "identity_reasons"],
        options,
    );
    let mut asked_per_cycle = Vec::new();
    for _ in 0..4 {
        script.clear_calls();
        p.cycle().await;
        let asked: Vec<String> = script
            .calls(Operation::GetEmailIdentity)
            .into_iter()
            .flat_map(|c| c.identities)
            .collect();
        assert!(asked.len() <= 20, "the budget: {asked:?}");
        assert!(
            asked.iter().all(|id| failed(id)),
            "only the unhealthy: {asked:?}"
        );
        asked_per_cycle.push(asked);
    }
    // Within two cycles of the finding every failed identity was explained once.
    let explained: std::collections::BTreeSet<&String> =
        asked_per_cycle.iter().flatten().take(30).collect();
    assert_eq!(explained.len(), 30, "{asked_per_cycle:?}");
    let text = shared.exposition().text();
    assert!(text.contains("aws_ses_identity_verification_error{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"d000.example.com\",error_type=\"TYPE_NOT_FOUND\"} 1\n"));
    assert!(text.contains("aws_ses_identity_verification_last_checked_timestamp_seconds{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"d000.example.com\"} 1765000000\n"));
    assert!(
        !text.contains("identity=\"d035.example.com\",error_type="),
        "healthy: no reason"
    );
}

#[tokio::test(start_paused = true)]
async fn an_identity_ses_refuses_to_explain_holds_no_other_back_and_fails_no_cycle() {
    use crate::model::{EmailIdentity, Verification, VerificationStatus};
    let script = scripted();
    let all = domains(5);
    script.answer_with(move |request| match request {
        crate::aws::Request::GetIdentityVerificationAttributes { identities } => {
            let answer = identities
                .iter()
                .map(|id| {
                    let status = VerificationStatus::Pending;
                    (
                        id.clone(),
                        Verification {
                            status,
                            token: None,
                        },
                    )
                })
                .collect();
            Some(Box::pin(std::future::ready(Ok(
                Response::GetIdentityVerificationAttributes(answer),
            ))))
        }
        // SESv2 refuses the first name every time.
        crate::aws::Request::GetEmailIdentity { identity } if *identity == "d000.example.com" => {
            Some(Box::pin(std::future::ready(Err(SesError::Client {
                code: "BadRequestException".into(),
                status: 400,
                message: "bad name".into(),
            }))))
        }
        crate::aws::Request::GetEmailIdentity { .. } => Some(Box::pin(std::future::ready(Ok(
            Response::GetEmailIdentity(EmailIdentity {
                error_type: Some("HOST_NOT_FOUND".into()),
                ..EmailIdentity::default()
            }),
        )))),
        _ => None,
    });
    let options = CollectorOptions {
        reasons_per_cycle: 2,
        ..CollectorOptions::default()
    };
    let (mut p, shared) = new_target_with_options(
        &script,
        &all,
        &["verification", "identity_reasons"],
        options,
    );
    // One cycle to find them, then ⌈5 / 2⌉ = 3 to explain every one once.
    for _ in 0..4 {
        p.cycle().await;
    }
    let text = shared.exposition().text();
    for id in &all[1..] {
        assert!(
            text.contains(&format!(
                "identity=\"{id}\",error_type=\"HOST_NOT_FOUND\"}} 1\n"
            )),
            "{id} explained despite d000: {text}"
        );
    }
    assert!(!text.contains("identity=\"d000.example.com\",error_type="));
    let health = shared.telemetry.render();
    assert!(
        health.contains("collector=\"identity_reasons\"} 1\n"),
        "a refusal about one identity is its answer, not a failed cycle: {health}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweep_learns_healthy_domains_dkim_origins_and_a_refusal_fails_no_cycle() {
    use crate::model::{DkimAttributes, DkimOrigin, EmailIdentity, VerificationStatus};
    let script = scripted();
    let all = domains(5);
    script.answer_with(move |request| match request {
        crate::aws::Request::GetIdentityDkimAttributes { identities } => {
            let answer = identities
                .iter()
                .map(|id| {
                    let attributes = DkimAttributes {
                        enabled: Some(true),
                        status: VerificationStatus::Success,
                        tokens: vec!["t1".into(), "t2".into(), "t3".into()],
                    };
                    (id.clone(), attributes)
                })
                .collect();
            Some(Box::pin(std::future::ready(Ok(
                Response::GetIdentityDkimAttributes(answer),
            ))))
        }
        // IAM refuses the first domain every time.
        crate::aws::Request::GetEmailIdentity { identity } if *identity == "d000.example.com" => {
            Some(Box::pin(std::future::ready(Err(SesError::Client {
                code: "AccessDeniedException".into(),
                status: 403,
                message: "not this one".into(),
            }))))
        }
        crate::aws::Request::GetEmailIdentity { .. } => Some(Box::pin(std::future::ready(Ok(
            Response::GetEmailIdentity(EmailIdentity {
                verification_status: Some(VerificationStatus::Success),
                signing_origin: Some("AWS_SES".into()),
                signing_hosted_zone: Some("dkim.af-south-1.amazonses.com".into()),
                ..EmailIdentity::default()
            }),
        )))),
        _ => None,
    });
    let options = CollectorOptions {
        reasons_per_cycle: 2,
        ..CollectorOptions::default()
    };
    let (mut p, shared) =
        new_target_with_options(&script, &all, &["dkim", "identity_reasons"], options);
    // The dns collector reads the facts.
    let facts = shared.facts.subscribe();
    // One cycle for the tokens; the refused domain is asked once and waits its day;
    // ⌈4 / 2⌉ more cycles reach the others.
    let mut asked = Vec::new();
    for _ in 0..4 {
        script.clear_calls();
        p.cycle().await;
        asked.extend(
            script
                .calls(Operation::GetEmailIdentity)
                .into_iter()
                .flat_map(|c| c.identities),
        );
        let health = shared.telemetry.render();
        assert!(
            health.contains("collector=\"identity_reasons\"} 1\n"),
            "a sweep call refused fails no cycle: {health}"
        );
    }
    assert_eq!(
        asked.iter().filter(|id| *id == "d000.example.com").count(),
        1,
        "{asked:?}"
    );
    let all_facts = facts.borrow();
    let target = all_facts.values().next().expect("the target's facts");
    for id in &all[1..] {
        assert_eq!(
            target[id].dkim_origin,
            Some(DkimOrigin::AwsSes {
                zone: Some("dkim.af-south-1.amazonses.com".into())
            }),
            "{id}"
        );
    }
    assert_eq!(target["d000.example.com"].dkim_origin, None);
    // Healthy: nothing exported.
    assert!(!shared
        .exposition()
        .text()
        .contains("aws_ses_identity_reason_last_refresh_timestamp_seconds"));
}

#[tokio::test(start_paused = true)]
async fn a_listing_whose_token_comes_back_stops_at_once_and_keeps_the_last_values() {
    use crate::model::{EmailIdentityPage, Verification, VerificationStatus};
    let script = scripted();
    let all = domains(3);
    let first = all.clone();
    // Every page holds the first identity and hands out the same token again.
    script.answer_with(move |request| {
        let crate::aws::Request::ListEmailIdentities { .. } = request else {
            return None;
        };
        let page = EmailIdentityPage {
            identities: vec![(
                first[0].clone(),
                Verification {
                    status: VerificationStatus::Success,
                    token: None,
                },
            )],
            next_token: Some("again".into()),
        };
        Some(Box::pin(std::future::ready(Ok(
            Response::ListEmailIdentities(page),
        ))))
    });
    let (mut p, shared) = new_target_with_options(&script, &all, &["verification"], list_source());
    p.cycle().await;
    // The first page, then the one whose token repeats: no third call, no cycle spent.
    assert_eq!(script.calls(Operation::ListEmailIdentities).len(), 2);
    let text = shared.exposition().text();
    assert!(text.contains("identity=\"d000.example.com\",status=\"Success\"} 1\n"));
    // Not listed by a listing that did not finish: not taken for missing or deleted.
    assert!(!text.contains("identity=\"d001.example.com\""), "{text}");
    assert!(shared
        .telemetry
        .render()
        .contains("collector=\"verification\"} 0\n"));
}
