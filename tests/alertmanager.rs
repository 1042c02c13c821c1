//! The example Alertmanager config (deploy/alertmanager/alertmanager.yml) in a real
//! Alertmanager (Debian's package): alerts of two accounts × two regions are posted
//! to `/api/v2/alerts` as Prometheus posts them, and what Alertmanager makes of them
//! is read back from `/api/v2/alerts` (each alert's `status.inhibitedBy`),
//! `/api/v2/alerts/groups` (grouping and receiver) and a loopback webhook standing in
//! for both receivers (the notifications, counted).
//!
//! Each test runs its own Alertmanager, so the alerts of one scenario cannot
//! inhibit another's.
//!
//! Documented transforms of the config (tests/common/alertmanager.rs), and nothing
//! else: the receivers' `127.0.0.1:PORT` becomes the test's webhook (paths kept), and
//! every `group_wait` and `group_interval` is divided by 30 (30s → 1s, 1m → 2s,
//! 5m → 10s). Routing, grouping and inhibit rules are used as shipped.
//!
//! The alerts are those of deploy/prometheus/alerts.yml: their names by kind in the
//! tables below (a test checks the tables hold every SES alert of the rule file),
//! their severities read from the rule file, so what is posted is what Prometheus
//! sends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::alertmanager::{alert, shipped_config, Alertmanager, Webhook, TIME_SCALE};
use common::wait_for;
use serde_json::Value;

const JOB: &str = "ses-identity-exporter";
const A: &str = "111111111111";
const B: &str = "222222222222";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const INSTANCE: &str = "10.0.0.7:10150";

/// Identity alerts: job, aws_account_id, aws_region, identity (and mail_from_domain
/// for the MAIL FROM ones).
const IDENTITY: [&str; 22] = [
    "SesMailFromFailedRejectingMail",
    "SesMailFromTemporaryFailureRejectingMail",
    "SesMailFromPendingRejectingMail",
    "SesMailFromStatusUnknownRejectingMail",
    "SesIdentityVerificationFailed",
    "SesIdentityNotVerified",
    "SesIdentityNotFound",
    "SesMailFromMxWrongRejectingMail",
    "SesMailFromFailed",
    "SesMailFromTemporaryFailure",
    "SesMailFromPendingTooLong",
    "SesIdentityStateUnknown",
    "SesIdentityVerificationTemporaryFailure",
    "SesDkimFailed",
    "SesMailFromMxWrong",
    "SesMailFromSpfMissing",
    "SesMailFromDnsStale",
    "SesDmarcRejectsIdentityMail",
    "SesDmarcQuarantinesIdentityMail",
    "SesDkimRecordsMissing",
    "SesMailFromSpfPermError",
    "SesVerificationRecordMissing",
];
/// Account alerts: job, aws_account_id, aws_region; no identity.
const ACCOUNT: [&str; 7] = [
    "SesAccountSendingDisabled",
    "SesSendQuotaExhausted",
    "SesSendQuotaNearlyUsed",
    "SesAccountStateUnknown",
    "SesAccountSendingPaused",
    "SesAccountUnderReview",
    "SesAccountInSandbox",
];
/// Reputation entity alerts: job, aws_account_id, aws_region, entity_reference,
/// entity_type, resource_type, resource_name, and identity for an identity.
const ENTITY: [&str; 2] = [
    "SesReputationEntityDisabled",
    "SesReputationEntityStateUnknown",
];
const QUOTA_WARNING: &str = "SesSendQuotaNearlyUsed";
/// SES paused the account (SHUTDOWN): silences the pages of its account and region.
const PAUSED: &str = "SesAccountSendingPaused";

/// Each alert's severity, as deploy/prometheus/alerts.yml ships it.
fn severity(name: &str) -> &'static str {
    static RULES: std::sync::OnceLock<BTreeMap<String, &'static str>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let mut out = BTreeMap::new();
        for rule in common::shipped_rules() {
            let severity = match rule["labels"]["severity"].as_str().unwrap() {
                "critical" => "critical",
                "warning" => "warning",
                other => panic!("severity {other}"),
            };
            out.insert(rule["alert"].as_str().unwrap().to_owned(), severity);
        }
        out
    });
    rules
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not a shipped rule"))
}

fn identity_alerts(wanted: &str) -> Vec<&'static str> {
    IDENTITY
        .into_iter()
        .filter(|n| severity(n) == wanted)
        .collect()
}

fn account_alerts(wanted: &str) -> Vec<&'static str> {
    ACCOUNT
        .into_iter()
        .filter(|n| severity(n) == wanted)
        .collect()
}

#[test]
fn the_tables_hold_every_ses_alert_of_the_rule_file() {
    let rules = common::shipped_rules();
    let shipped: BTreeSet<&str> = rules
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .filter(|a| !a.starts_with("SesExporter"))
        .collect();
    let tabled: BTreeSet<&str> = IDENTITY
        .iter()
        .chain(&ACCOUNT)
        .chain(&ENTITY)
        .copied()
        .collect();
    assert_eq!(tabled, shipped);
}

// ---------------------------------------------------------------- alerts

fn identity_alert(name: &str, account: &str, region: &str, identity: &str) -> Value {
    assert!(IDENTITY.contains(&name), "not an identity alert: {name}");
    let severity = severity(name);
    let domain = format!("bounce.{identity}");
    let mut labels = vec![
        ("alertname", name),
        ("job", JOB),
        ("aws_account_id", account),
        ("aws_region", region),
        ("identity", identity),
        ("severity", severity),
    ];
    if name.starts_with("SesMailFrom") {
        labels.push(("mail_from_domain", domain.as_str()));
    }
    alert(&labels)
}

fn account_alert(name: &str, account: &str, region: &str) -> Value {
    assert!(ACCOUNT.contains(&name), "not an account alert: {name}");
    let severity = severity(name);
    alert(&[
        ("alertname", name),
        ("job", JOB),
        ("aws_account_id", account),
        ("aws_region", region),
        ("severity", severity),
    ])
}

/// A reputation entity alert about resource `kind/name` (`identity/NAME` carries the
/// identity label too, as the collector writes it).
fn entity_alert(name: &str, account: &str, region: &str, kind: &str, resource: &str) -> Value {
    assert!(ENTITY.contains(&name), "not an entity alert: {name}");
    let severity = severity(name);
    let reference = format!("arn:aws:ses:{region}:{account}:{kind}/{resource}");
    let mut labels = vec![
        ("alertname", name),
        ("job", JOB),
        ("aws_account_id", account),
        ("aws_region", region),
        ("entity_reference", reference.as_str()),
        ("entity_type", "RESOURCE"),
        ("resource_type", kind),
        ("resource_name", resource),
        ("severity", severity),
    ];
    if kind == "identity" {
        labels.push(("identity", resource));
    }
    alert(&labels)
}

/// SesExporterDown, SesExporterDuplicateTarget, SesExporterWebConfigReloadFailed:
/// about the exporter process, no account or region.
fn process_alert(name: &str, job: &str) -> Value {
    alert(&[
        ("alertname", name),
        ("job", job),
        ("instance", INSTANCE),
        ("severity", "warning"),
    ])
}

fn stale_alert(account: &str, region: &str) -> Value {
    alert(&[
        ("alertname", "SesExporterStale"),
        ("job", JOB),
        ("instance", INSTANCE),
        ("aws_account_id", account),
        ("aws_region", region),
        ("severity", "warning"),
    ])
}

/// The exporter alerts that inhibit nothing, all of one account and region where
/// they have one.
fn quiet_exporter_alerts(account: &str, region: &str) -> Vec<Value> {
    let mut v = vec![
        process_alert("SesExporterDuplicateTarget", JOB),
        process_alert("SesExporterWebConfigReloadFailed", JOB),
        alert(&[
            ("alertname", "SesExporterTaskRestarting"),
            ("job", JOB),
            ("instance", INSTANCE),
            ("task", "poller"),
            ("severity", "warning"),
        ]),
    ];
    for name in ["SesExporterThrottled", "SesExporterRequestsFailing"] {
        v.push(alert(&[
            ("alertname", name),
            ("job", JOB),
            ("instance", INSTANCE),
            ("aws_account_id", account),
            ("aws_region", region),
            ("operation", "GetIdentityMailFromDomainAttributes"),
            ("severity", "warning"),
        ]));
    }
    v
}

/// A short, unique, readable name for a posted alert, e.g.
/// `SesDkimFailed A/eu-west-1 shared.example.com`.
fn key(labels: &Value) -> String {
    let l = |k: &str| labels[k].as_str().unwrap_or("");
    let mut k = l("alertname").to_owned();
    if l("job") != JOB {
        k.push_str(&format!(" job={}", l("job")));
    }
    if !l("aws_account_id").is_empty() {
        let account = match l("aws_account_id") {
            a if a == A => "A",
            b if b == B => "B",
            other => other,
        };
        k.push_str(&format!(" {account}/{}", l("aws_region")));
    }
    for extra in [
        "identity",
        "resource_type",
        "resource_name",
        "operation",
        "task",
    ] {
        if !l(extra).is_empty() {
            k.push_str(&format!(" {}", l(extra)));
        }
    }
    k
}

// ---------------------------------------------------------------- harness

struct Setup {
    am: Alertmanager,
    webhook: Webhook,
}

fn setup() -> Setup {
    let webhook = Webhook::start();
    let am = Alertmanager::start(&shipped_config(webhook.addr));
    Setup { am, webhook }
}

/// Posts `posted` and returns, for each (by [`key`]), the key of the alert that
/// inhibits it, or `None` when it is active, as `/api/v2/alerts` reports them.
///
/// Alertmanager's inhibitor takes in alerts asynchronously, in the order they were
/// posted. This waits until every alert `expected` to be inhibited is, or 15 s; in
/// each test every possible source silences something or is posted before one that
/// does, so by then every source has been taken in and an alert still active stays
/// active. It returns the whole table for the caller to compare, so a failure shows
/// every difference at once.
fn inhibitions(
    am: &Alertmanager,
    posted: &[Value],
    expected: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Option<String>> {
    am.post(posted);
    let keys: BTreeSet<String> = posted.iter().map(|a| key(&a["labels"])).collect();
    assert_eq!(keys.len(), posted.len(), "two posted alerts share a key");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let alerts = am.alerts();
        let by_fingerprint: BTreeMap<&str, String> = alerts
            .iter()
            .map(|a| (a["fingerprint"].as_str().unwrap(), key(&a["labels"])))
            .collect();
        let table: BTreeMap<String, Option<String>> = alerts
            .iter()
            .map(|a| {
                let by = a["status"]["inhibitedBy"]
                    .as_array()
                    .and_then(|v| v.first())
                    .and_then(|fp| by_fingerprint.get(fp.as_str().unwrap()))
                    .cloned();
                (key(&a["labels"]), by)
            })
            .collect();
        let complete = table.len() == posted.len()
            && expected
                .iter()
                .all(|(k, v)| v.is_none() || table.get(k).is_some_and(|t| t.is_some()));
        if complete || Instant::now() > deadline {
            return table;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The expected table: every posted alert active unless listed in `inhibited`
/// (target key → source key).
fn expect(posted: &[Value], inhibited: &[(String, String)]) -> BTreeMap<String, Option<String>> {
    let mut table: BTreeMap<String, Option<String>> =
        posted.iter().map(|a| (key(&a["labels"]), None)).collect();
    for (target, source) in inhibited {
        let slot = table
            .get_mut(target)
            .unwrap_or_else(|| panic!("{target} is not posted"));
        *slot = Some(source.clone());
    }
    table
}

/// Fails listing only the alerts whose inhibition differs from `expected`.
fn assert_table(
    actual: &BTreeMap<String, Option<String>>,
    expected: &BTreeMap<String, Option<String>>,
) {
    let show = |v: Option<&Option<String>>| match v {
        None => "not posted/not found".to_owned(),
        Some(None) => "active".to_owned(),
        Some(Some(by)) => format!("inhibited by {by}"),
    };
    let keys: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    let wrong: Vec<String> = keys
        .into_iter()
        .filter(|k| actual.get(*k) != expected.get(*k))
        .map(|k| {
            format!(
                "  {k}: want {}, got {}",
                show(expected.get(k)),
                show(actual.get(k))
            )
        })
        .collect();
    const SHOWN: usize = 40;
    assert!(
        wrong.is_empty(),
        "{} of {} alerts wrong:\n{}{}",
        wrong.len(),
        expected.len(),
        wrong[..wrong.len().min(SHOWN)].join("\n"),
        if wrong.len() > SHOWN { "\n  ..." } else { "" }
    );
}

fn k(a: &Value) -> String {
    key(&a["labels"])
}

// ---------------------------------------------------------------- inhibitions

/// Every identity critical silences every identity warning of the same identity in
/// the same account and region, and nothing else: not the same identity name in
/// the other account or region, not another identity, not the account's warning,
/// not an exporter alert.
#[test]
fn identity_critical_silences_only_the_same_identitys_warnings_in_its_account_and_region() {
    let s = setup();
    let mut posted = Vec::new();
    let mut inhibited = Vec::new();
    for critical in identity_alerts("critical") {
        let identity = format!("{}.example.com", critical.to_lowercase());
        let source = identity_alert(critical, A, WEST, &identity);
        for warning in identity_alerts("warning") {
            let same = identity_alert(warning, A, WEST, &identity);
            inhibited.push((k(&same), k(&source)));
            posted.push(same);
            posted.push(identity_alert(warning, B, WEST, &identity));
            posted.push(identity_alert(warning, A, EAST, &identity));
        }
        posted.push(source);
    }
    posted.push(identity_alert(
        "SesDkimFailed",
        A,
        WEST,
        "other.example.com",
    ));
    posted.push(account_alert(QUOTA_WARNING, A, WEST));
    posted.extend(quiet_exporter_alerts(A, WEST));

    let expected = expect(&posted, &inhibited);
    assert_table(&inhibitions(&s.am, &posted, &expected), &expected);
}

/// One stale target (A, us-east-1) silences the identity and account alerts of A in
/// us-east-1, and nothing of A in eu-west-1 or of B in either region; the exporter's
/// own alerts about that target stay.
#[test]
fn stale_target_silences_only_its_own_account_and_region() {
    let s = setup();
    let stale = stale_alert(A, EAST);
    let mut posted = Vec::new();
    let mut inhibited = Vec::new();
    for (account, region) in [(A, EAST), (A, WEST), (B, EAST), (B, WEST)] {
        let mut scope = Vec::new();
        // One identity per alert, so no critical silences a warning here.
        for name in IDENTITY {
            let identity = format!("{}.example.com", name.to_lowercase());
            scope.push(identity_alert(name, account, region, &identity));
        }
        // Not the pause: it would silence the pages beside it (its own test below).
        for name in account_alerts("critical")
            .into_iter()
            .filter(|n| *n != PAUSED)
        {
            scope.push(account_alert(name, account, region));
        }
        // A configuration set's alerts: no identity, so no critical silences them.
        for name in ENTITY {
            scope.push(entity_alert(
                name,
                account,
                region,
                "configuration-set",
                &name.to_lowercase(),
            ));
        }
        if (account, region) == (A, EAST) {
            // The quota warning only here: elsewhere the account criticals would
            // silence it. Here the account-critical rule mutes it too; Alertmanager
            // names the first rule in file order that does, the stale one.
            scope.push(account_alert(QUOTA_WARNING, account, region));
            inhibited.extend(scope.iter().map(|a| (k(a), k(&stale))));
        }
        posted.extend(scope);
    }
    posted.extend(quiet_exporter_alerts(A, EAST));
    // Last, so once its targets show as inhibited every alert has been taken in.
    posted.push(stale);

    let expected = expect(&posted, &inhibited);
    assert_table(&inhibitions(&s.am, &posted, &expected), &expected);
}

/// An account-level critical (A us-east-1 sending disabled, B eu-west-1 quota
/// exhausted) silences that account and region's account warnings (quota nearly
/// used, sandbox), and neither the other accounts' and regions' nor any identity or
/// reputation entity warning nor any exporter alert. A disabled reputation entity
/// (a configuration set of A in eu-west-1) is no account-level critical: the account
/// warnings beside it stay.
#[test]
fn account_critical_silences_only_its_account_warning_never_exporter_alerts() {
    let s = setup();
    let disabled = account_alert("SesAccountSendingDisabled", A, EAST);
    let exhausted = account_alert("SesSendQuotaExhausted", B, WEST);
    let mut posted = Vec::new();
    let mut inhibited = Vec::new();
    for (account, region) in [(A, EAST), (A, WEST), (B, EAST), (B, WEST)] {
        for name in [QUOTA_WARNING, "SesAccountInSandbox"] {
            let warning = account_alert(name, account, region);
            match (account, region) {
                (A, EAST) => inhibited.push((k(&warning), k(&disabled))),
                (B, WEST) => inhibited.push((k(&warning), k(&exhausted))),
                _ => {}
            }
            posted.push(warning);
        }
    }
    posted.push(entity_alert(
        "SesReputationEntityDisabled",
        A,
        WEST,
        "configuration-set",
        "marketing",
    ));
    for (account, region) in [(A, EAST), (B, WEST)] {
        posted.push(entity_alert(
            "SesReputationEntityStateUnknown",
            account,
            region,
            "tenant",
            "acme",
        ));
    }
    for (account, region) in [(A, EAST), (B, WEST)] {
        for name in identity_alerts("warning") {
            let identity = format!("{}.example.com", name.to_lowercase());
            posted.push(identity_alert(name, account, region, &identity));
        }
    }
    // Exporter alerts of the same account and region, and the process-level ones
    // without account or region labels (which an unguarded `equal` would match).
    posted.extend(quiet_exporter_alerts(A, EAST));
    posted.push(disabled);
    posted.push(exhausted);

    let expected = expect(&posted, &inhibited);
    assert_table(&inhibitions(&s.am, &posted, &expected), &expected);
}

/// SES paused account A's sending in us-east-1 (SHUTDOWN): that page silences the
/// other pages of A in us-east-1 (every identity critical, a disabled reputation
/// entity, sending disabled, quota exhausted) and nothing else: not A's pages in
/// eu-west-1, not B's in either region, no warning (identity, entity), no exporter
/// alert.
#[test]
fn account_paused_silences_only_its_account_and_regions_pages() {
    let s = setup();
    let paused = account_alert(PAUSED, A, EAST);
    let mut posted = Vec::new();
    let mut inhibited = Vec::new();
    for (account, region) in [(A, EAST), (A, WEST), (B, EAST), (B, WEST)] {
        let mut pages = Vec::new();
        // One identity per alert, so no identity critical silences a warning here.
        for name in identity_alerts("critical") {
            let identity = format!("{}.example.com", name.to_lowercase());
            pages.push(identity_alert(name, account, region, &identity));
        }
        for name in account_alerts("critical")
            .into_iter()
            .filter(|n| *n != PAUSED)
        {
            pages.push(account_alert(name, account, region));
        }
        pages.push(entity_alert(
            "SesReputationEntityDisabled",
            account,
            region,
            "identity",
            "paused-entity.example.com",
        ));
        if (account, region) == (A, EAST) {
            inhibited.extend(pages.iter().map(|a| (k(a), k(&paused))));
        }
        posted.extend(pages);
        for name in identity_alerts("warning") {
            let identity = format!("{}.example.com", name.to_lowercase());
            posted.push(identity_alert(name, account, region, &identity));
        }
        posted.push(entity_alert(
            "SesReputationEntityStateUnknown",
            account,
            region,
            "tenant",
            "acme",
        ));
    }
    posted.extend(quiet_exporter_alerts(A, EAST));
    // Last, so once its targets show as inhibited every alert has been taken in.
    posted.push(paused);

    let expected = expect(&posted, &inhibited);
    assert_table(&inhibitions(&s.am, &posted, &expected), &expected);
}

/// An exporter that cannot be scraped, as its rule reports it: one alert per target
/// only it polled (A, us-east-1 here), which silences the SES alerts of that account
/// and region and nothing else; and one without account labels (a replica whose twin
/// still reports its targets, or an exporter that never reported one), which silences
/// nothing. Nothing of another job, no other system's alert and none of the
/// exporter's own alerts is silenced.
#[test]
fn exporter_down_silences_only_the_targets_no_other_exporter_reports() {
    let s = setup();
    let mut down = stale_alert(A, EAST);
    down["labels"]["alertname"] = "SesExporterDown".into();
    let mut replica = process_alert("SesExporterDown", JOB);
    replica["labels"]["instance"] = "10.0.0.8:10150".into();
    let mut posted = Vec::new();
    let mut inhibited = Vec::new();
    let scopes = [(A, EAST), (A, WEST), (B, EAST), (B, WEST)];
    // Each identity alert in each scope, its own identity, so that no critical
    // silences a warning here; the account alerts likewise apart.
    for (i, name) in IDENTITY.iter().enumerate() {
        for (account, region) in scopes {
            let identity = format!("{}-{i}.example.com", name.to_lowercase());
            let a = identity_alert(name, account, region, &identity);
            if (account, region) == (A, EAST) {
                inhibited.push((k(&a), k(&down)));
            }
            posted.push(a);
        }
    }
    for (name, (account, region)) in [
        ("SesAccountSendingDisabled", (A, EAST)),
        ("SesSendQuotaExhausted", (B, WEST)),
        (QUOTA_WARNING, (B, EAST)),
        ("SesAccountStateUnknown", (A, WEST)),
    ] {
        let a = account_alert(name, account, region);
        if (account, region) == (A, EAST) {
            inhibited.push((k(&a), k(&down)));
        }
        posted.push(a);
    }
    posted.extend(quiet_exporter_alerts(A, EAST));
    // Another exporter job's alert of the same name, and another system's alert
    // that happens to carry this job's label.
    let mut elsewhere = identity_alert("SesMailFromFailedRejectingMail", A, EAST, "x.example.com");
    elsewhere["labels"]["job"] = "ses-identity-exporter-staging".into();
    posted.push(elsewhere);
    posted.push(alert(&[
        ("alertname", "KubePodNotReady"),
        ("job", JOB),
        ("aws_account_id", A),
        ("aws_region", EAST),
        ("severity", "warning"),
    ]));
    posted.push(replica);
    posted.push(down);

    let expected = expect(&posted, &inhibited);
    assert_table(&inhibitions(&s.am, &posted, &expected), &expected);
}

// ---------------------------------------------------------------- routing

/// The group_by labels an alert's group must have: alertname, job, and the account
/// and region where the alert has them.
fn group_labels(labels: &Value) -> Value {
    let mut g = serde_json::Map::new();
    for l in ["alertname", "job", "aws_account_id", "aws_region"] {
        if let Some(v) = labels.get(l) {
            g.insert(l.to_owned(), v.clone());
        }
    }
    Value::Object(g)
}

/// Criticals go to `pager` and warnings to `default`, one group (and notification)
/// per alert name, job, account and region, for every alert name (but those that
/// silence a whole account and region, SesExporterDown, SesExporterStale and
/// SesAccountSendingPaused, routed in the same way by severity).
#[test]
fn critical_pages_and_warning_goes_to_default_grouped_by_account_and_region() {
    let s = setup();
    let mut posted = Vec::new();
    for (i, name) in IDENTITY.iter().enumerate() {
        // Distinct identities: no critical silences a warning.
        let identity = format!("{}.example.com", name.to_lowercase());
        let (account, region) = [(A, EAST), (B, WEST)][i % 2];
        posted.push(identity_alert(name, account, region, &identity));
    }
    posted.push(account_alert("SesAccountSendingDisabled", B, EAST));
    posted.push(account_alert("SesSendQuotaExhausted", B, WEST));
    posted.push(account_alert(QUOTA_WARNING, A, WEST));
    // Account warnings where no account critical is; the entity alerts about a
    // configuration set (no identity), so they silence nothing.
    for name in [
        "SesAccountUnderReview",
        "SesAccountInSandbox",
        "SesAccountStateUnknown",
    ] {
        posted.push(account_alert(name, A, EAST));
    }
    for name in ENTITY {
        posted.push(entity_alert(
            name,
            A,
            WEST,
            "configuration-set",
            "marketing",
        ));
    }
    posted.extend(quiet_exporter_alerts(A, EAST));
    // Two identities of one alert name in one account and region share a group;
    // the same name in the other region is a group of its own.
    posted.push(identity_alert(
        "SesMailFromFailedRejectingMail",
        A,
        EAST,
        "second.example.com",
    ));
    posted.push(identity_alert(
        "SesMailFromFailedRejectingMail",
        A,
        WEST,
        "third.example.com",
    ));
    s.am.post(&posted);

    // group labels → (receiver, alert keys) as each group should be.
    let mut want: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for a in &posted {
        let receiver = if a["labels"]["severity"] == "critical" {
            "pager"
        } else {
            "default"
        };
        let g = want
            .entry(group_labels(&a["labels"]).to_string())
            .or_insert_with(|| (receiver.to_owned(), BTreeSet::new()));
        assert_eq!(g.0, receiver, "one group mixes severities");
        g.1.insert(k(a));
    }
    assert_eq!(want.len(), posted.len() - 1, "exactly one shared group");

    let groups = wait_for(Duration::from_secs(15), "every group", || {
        let mut got: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for g in s.am.groups() {
            let receiver = g["receiver"]["name"].as_str().unwrap().to_owned();
            let alerts = g["alerts"].as_array().unwrap().iter().map(k).collect();
            got.insert(g["labels"].to_string(), (receiver, alerts));
        }
        let grouped: usize = got.values().map(|(_, alerts)| alerts.len()).sum();
        (grouped == posted.len()).then_some(got)
    });
    assert_same_groups(&groups, &want, "group");

    // Each group is notified once, at its receiver's path, listing its alerts.
    let path = |receiver: &str| match receiver {
        "pager" => "/page",
        _ => "/alerts",
    };
    let notified = wait_for(
        Duration::from_secs(30),
        "a notification for every group",
        || {
            let n = s.webhook.received();
            (n.len() >= want.len()).then_some(n)
        },
    );
    let mut got: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for n in &notified {
        let receiver = n.body["receiver"].as_str().unwrap().to_owned();
        assert_eq!(n.path, path(&receiver), "{}", n.body);
        assert_eq!(n.body["status"], "firing");
        let alerts = n.alert_labels().into_iter().map(key).collect();
        let previous = got.insert(n.body["groupLabels"].to_string(), (receiver, alerts));
        assert!(previous.is_none(), "a group notified twice: {}", n.body);
    }
    assert_same_groups(&got, &want, "notification");
}

/// Fails listing the groups (group labels → receiver and alerts) that are missing,
/// unexpected or different.
fn assert_same_groups(
    got: &BTreeMap<String, (String, BTreeSet<String>)>,
    want: &BTreeMap<String, (String, BTreeSet<String>)>,
    what: &str,
) {
    let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let wrong: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(20)
        .map(|k| {
            format!(
                "  {k}:\n    want {:?}\n    got  {:?}",
                want.get(k),
                got.get(k)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} {what}s, want {}; first differences:\n{}",
        got.len(),
        want.len(),
        wrong.join("\n")
    );
}

/// An outage failing 1,000 identities of one account and region sends one page
/// listing all of them, and nothing more within three group intervals; the same
/// alert in another account or region is a page of its own.
#[test]
fn a_thousand_failing_identities_in_one_account_and_region_are_one_page() {
    let s = setup();
    let name = "SesMailFromFailedRejectingMail";
    let mut posted: Vec<Value> = (0..1000)
        .map(|i| identity_alert(name, A, EAST, &format!("id-{i:04}.example.com")))
        .collect();
    posted.push(identity_alert(name, A, WEST, "id-0000.example.com"));
    posted.push(identity_alert(name, B, EAST, "id-0000.example.com"));
    s.am.post(&posted);

    let pages = wait_for(Duration::from_secs(30), "three pages", || {
        let p = s.webhook.to("/page");
        (p.len() >= 3).then_some(p)
    });
    let first = pages.iter().map(|p| p.arrived).min().unwrap();
    // Nothing to wait for but time: a second notification of an unchanged group
    // could only come at a later group_interval (1m shipped).
    let window = Duration::from_secs(60) / TIME_SCALE * 3;
    std::thread::sleep(window.saturating_sub(first.elapsed()));

    let pages = s.webhook.to("/page");
    assert_eq!(
        pages.len(),
        3,
        "{} pages for {} alerts: want one per account and region",
        pages.len(),
        posted.len()
    );
    let mut sizes: BTreeMap<(String, String), usize> = BTreeMap::new();
    for p in &pages {
        let g = &p.body["groupLabels"];
        let scope = (
            g["aws_account_id"].as_str().unwrap().to_owned(),
            g["aws_region"].as_str().unwrap().to_owned(),
        );
        let identities: BTreeSet<&str> = p
            .alert_labels()
            .iter()
            .map(|l| l["identity"].as_str().unwrap())
            .collect();
        assert!(
            sizes.insert(scope, identities.len()).is_none(),
            "two pages for one account and region: {g}"
        );
    }
    let want: BTreeMap<(String, String), usize> = [
        ((A.to_owned(), EAST.to_owned()), 1000),
        ((A.to_owned(), WEST.to_owned()), 1),
        ((B.to_owned(), EAST.to_owned()), 1),
    ]
    .into();
    assert_eq!(sizes, want);
    assert!(s.webhook.to("/alerts").is_empty());
    let groups = s.am.groups();
    assert_eq!(groups.len(), 3, "{groups:?}");
}
