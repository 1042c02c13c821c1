//! [`validate`]: flags and file combined (flags win) into one [`Config`], every value
//! checked on the way, each error naming the flag or key at fault (that at least one
//! collector is on is checked by `collectors`).

use std::collections::BTreeSet;
use std::time::Duration;

use regex::Regex;

use super::{
    invalid, Config, ConfigError, Discovery, DiscoveryType, Flags, Identities, Listen,
    RawDiscovery, RawFile, RawTarget, SesSettings, TargetConfig, DEFAULT_DISCOVERY_INTERVAL,
    DEFAULT_POLL_INTERVAL, DEFAULT_SESSION_NAME, DEFAULT_SES_PACING, DEFAULT_SES_RATE,
    DEFAULT_SES_TIMEOUT,
};
use crate::model::IdentityType;

/// Combines flags and file (flags win) into a [`Config`], naming the flag or key of
/// the first invalid value. Checked: the telemetry path, durations, the SES rate and
/// pacing, the static identity lists, the discovery regexes, the targets (regions,
/// role ARNs, STS session names and external IDs, one target per account and region)
/// and the DNS nameservers.
pub fn validate(flags: Flags, file: Option<RawFile>) -> Result<Config, ConfigError> {
    let no_file = file.is_none();
    let file = file.unwrap_or_default();

    if !flags.web_telemetry_path.starts_with('/') {
        return Err(invalid(
            "--web.telemetry-path",
            format!("must start with '/', got {:?}", flags.web_telemetry_path),
        ));
    }
    if ["/", "/-/healthy", "/-/ready"].contains(&flags.web_telemetry_path.as_str()) {
        return Err(invalid(
            "--web.telemetry-path",
            format!(
                "{:?} is taken by the exporter's own pages",
                flags.web_telemetry_path
            ),
        ));
    }

    let listen = listen(flags.web_systemd_socket, &flags.web_listen_address)?;

    let poll_interval = pick_duration(
        ("--poll.interval", flags.poll_interval.as_deref()),
        ("poll.interval", file.poll.interval.as_deref()),
        DEFAULT_POLL_INTERVAL,
    )?;
    let timeout = pick_duration(
        ("--ses.timeout", flags.ses_timeout.as_deref()),
        ("ses.timeout", file.ses.timeout.as_deref()),
        DEFAULT_SES_TIMEOUT,
    )?;
    let rate = match (flags.ses_rate, file.ses.rate) {
        (Some(rate), _) => check_rate("--ses.rate", rate)?,
        (None, Some(rate)) => check_rate("ses.rate", rate)?,
        (None, None) => DEFAULT_SES_RATE,
    };
    let pacing = match (flags.ses_pacing, file.ses.pacing) {
        (Some(pacing), _) => check_pacing("--ses.pacing", pacing)?,
        (None, Some(pacing)) => check_pacing("ses.pacing", pacing)?,
        (None, None) => DEFAULT_SES_PACING,
    };

    let discovery_interval = pick_duration(
        ("--discovery.interval", flags.discovery_interval.as_deref()),
        (
            "discovery.interval",
            file.discovery.as_ref().and_then(|d| d.interval.as_deref()),
        ),
        DEFAULT_DISCOVERY_INTERVAL,
    )?;
    let top_discovery = file.discovery.unwrap_or_default();
    let identities = selection(
        "",
        &file.identities,
        &top_discovery,
        discovery_interval,
        no_file,
        file.targets.is_some(),
    )?;
    let targets = match file.targets {
        None => vec![TargetConfig {
            region: None,
            role: None,
            identities: identities.clone(),
        }],
        Some(raw) => validate_targets(raw, &identities, flags.discovery_interval.as_deref())?,
    };
    let mut collectors = flags.collectors.enabled()?;
    let mut superseded = Vec::new();
    // GetAccount answers what GetSendQuota and GetAccountSendingEnabled answer: with
    // both on, the account collector writes those families and quota does not run,
    // so no family is written twice and no call is made twice.
    if collectors.is_on("account") && collectors.is_on("quota") {
        collectors.switch_off("quota");
        superseded.push((
            "quota",
            "the account collector's GetAccount answers the quota families; the quota collector is not run",
        ));
    }
    if collectors.is_on("identity_reasons")
        && !collectors.is_on("verification")
        && !collectors.is_on("dkim")
    {
        return Err(invalid(
            "--collector.identity_reasons",
            "it explains the identities the verification and dkim collectors find not healthy: \
             switch on --collector.verification or --collector.dkim as well",
        ));
    }

    let read_header_timeout =
        parse_duration("--web.read-header-timeout", &flags.web_read_header_timeout)?;
    let send_timeout = parse_duration("--web.send-timeout", &flags.web_send_timeout)?;
    let dns_timeout = parse_duration("--dns.timeout", &flags.dns_timeout)?;
    let nameservers = flags
        .dns_nameserver
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| parse_nameserver(a.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let dns = flags
        .collectors
        .is_on("dns")
        .then(|| crate::collector::dns::DnsSettings {
            nameservers,
            timeout: dns_timeout,
            concurrency: usize::from(flags.dns_concurrency),
        });
    Ok(Config {
        listen,
        telemetry_path: flags.web_telemetry_path,
        max_connections: flags.web_max_connections as usize,
        read_header_timeout,
        send_timeout,
        log_level: flags.log_level,
        log_format: flags.log_format,
        config_file: flags.config_file,
        web_config_file: flags.web_config_file,
        check_only: flags.config_check,
        identities,
        targets,
        collectors,
        poll_interval,
        ses: SesSettings {
            rate,
            pacing,
            timeout,
        },
        worker_threads: usize::from(flags.worker_threads),
        dns,
        collector_options: crate::collector::CollectorOptions {
            verification_source: flags.verification_source,
            reasons_per_cycle: usize::from(flags.reasons_per_cycle),
        },
        superseded,
    })
}

/// An identity selection (`prefix` names where it is written: "" for the top
/// level, `targets[i].` for a target's own).
fn selection(
    prefix: &str,
    raw_identities: &[String],
    raw_discovery: &RawDiscovery,
    interval: Duration,
    no_file: bool,
    has_targets: bool,
) -> Result<Identities, ConfigError> {
    let fixed = normalise_identities(raw_identities).map_err(|e| prefixed(prefix, e))?;
    // Discovery defaults to on when nothing else says what to watch: with no config
    // at all the exporter watches the whole region.
    let enabled = raw_discovery.enabled.unwrap_or(fixed.is_empty());
    let include = compile_regexes(
        &format!("{prefix}discovery.include"),
        &raw_discovery.include,
    )?;
    let exclude = compile_regexes(
        &format!("{prefix}discovery.exclude"),
        &raw_discovery.exclude,
    )?;
    let discovery = if enabled {
        Some(Discovery {
            identity_type: raw_discovery.identity_type.unwrap_or(DiscoveryType::All),
            include,
            exclude,
            interval,
        })
    } else {
        // The regexes above are still validated, so a typo does not wait for the day
        // discovery is switched on. With targets, an empty top level is fine when
        // every target brings its own selection (checked per target).
        if fixed.is_empty() && !has_targets {
            let why = if no_file {
                "nothing to watch"
            } else {
                "the static list is empty and discovery is disabled: nothing to watch"
            };
            return Err(invalid(format!("{prefix}identities"), why));
        }
        None
    };
    Ok(Identities { fixed, discovery })
}

fn prefixed(prefix: &str, err: ConfigError) -> ConfigError {
    match err {
        ConfigError::Invalid { key, reason } => ConfigError::Invalid {
            key: format!("{prefix}{key}"),
            reason,
        },
        other => other,
    }
}

/// An AWS region name: lower-case words and a number joined by dashes
/// (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `arn:PARTITION:iam::ACCOUNT:role/NAME` → the account.
fn role_arn_account(arn: &str) -> Option<&str> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|n| !n.is_empty()) =>
        {
            Some(account)
        }
        _ => None,
    }
}

/// STS's rules for a session name and an external ID: `[\w+=,.@-]` (and `:/` in an
/// external ID), within the lengths STS accepts.
fn sts_text_ok(text: &str, min: usize, max: usize, extra: &str) -> bool {
    (min..=max).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) || extra.contains(c))
}

fn validate_targets(
    raw: Vec<RawTarget>,
    top: &Identities,
    discovery_interval_flag: Option<&str>,
) -> Result<Vec<TargetConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "targets",
            "an empty list polls nothing: list at least one target, or remove the key to poll the environment's region",
        ));
    }
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("targets[{i}].{k}");
        let region = match t.region.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(invalid(
                    key("region"),
                    "missing: every target names its region, e.g. eu-west-1",
                ))
            }
            Some(r) if !valid_region(r) => {
                return Err(invalid(
                    key("region"),
                    format!("{r:?} is not an AWS region name (e.g. eu-west-1)"),
                ))
            }
            Some(r) => r.to_owned(),
        };
        let role = match t.role_arn.as_deref().map(str::trim) {
            None => {
                if t.external_id.is_some() || t.session_name.is_some() {
                    let k = if t.external_id.is_some() {
                        "external_id"
                    } else {
                        "session_name"
                    };
                    return Err(invalid(key(k), "only meaningful with role_arn"));
                }
                None
            }
            Some(arn) => {
                let Some(account) = role_arn_account(arn) else {
                    return Err(invalid(
                        key("role_arn"),
                        format!(
                            "{arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                        ),
                    ));
                };
                let session_name = t
                    .session_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
                if !sts_text_ok(&session_name, 2, 64, "") {
                    return Err(invalid(
                        key("session_name"),
                        format!(
                            "{session_name:?}: 2 to 64 characters of letters, digits and _+=,.@-"
                        ),
                    ));
                }
                if let Some(id) = &t.external_id {
                    if !sts_text_ok(id, 2, 1224, ":/") {
                        return Err(invalid(
                            key("external_id"),
                            "2 to 1224 characters of letters, digits and _+=,.@:/-",
                        ));
                    }
                }
                Some(super::Role {
                    account: account.to_owned(),
                    arn: arn.to_owned(),
                    external_id: t.external_id.clone(),
                    session_name,
                })
            }
        };
        // Two targets on the same account and region would export the same series
        // and share one API budget: refuse what can be seen here (the rest is caught
        // when STS names the accounts).
        let scope = role.as_ref().map_or("", |r| r.account.as_str()).to_owned();
        if let Some((_, _, j)) = seen.iter().find(|(a, r, _)| *a == scope && *r == region) {
            let what = if scope.is_empty() {
                "the environment's credentials".to_owned()
            } else {
                format!("account {scope}")
            };
            return Err(invalid(
                format!("targets[{i}]"),
                format!(
                    "polls {what} in {region} like targets[{j}]: one target per account and region"
                ),
            ));
        }
        seen.push((scope, region.clone(), i));
        let identities = if t.identities.is_none() && t.discovery.is_none() {
            top.clone()
        } else {
            let raw_discovery = t.discovery.unwrap_or_default();
            let interval = pick_duration(
                ("--discovery.interval", discovery_interval_flag),
                (
                    &key("discovery.interval"),
                    raw_discovery.interval.as_deref(),
                ),
                DEFAULT_DISCOVERY_INTERVAL,
            )?;
            selection(
                &format!("targets[{i}]."),
                t.identities.as_deref().unwrap_or(&[]),
                &raw_discovery,
                interval,
                false,
                false,
            )?
        };
        out.push(TargetConfig {
            region: Some(region),
            role,
            identities,
        });
    }
    Ok(out)
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`. No host names: the resolver cannot be found by
/// resolving.
fn parse_nameserver(text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| {
            invalid(
                "--dns.nameserver",
                format!("{text:?} is not an IP address or IP:PORT (host names cannot be used for the resolver itself)"),
            )
        })
}

/// `--web.listen-address` (repeatable) or `--web.systemd-socket`, which wins as in
/// exporter-toolkit: with it the addresses (the default included) are not bound.
fn listen(systemd_socket: bool, addresses: &[String]) -> Result<Listen, ConfigError> {
    if systemd_socket {
        return Ok(Listen::SystemdSocket);
    }
    let mut seen = BTreeSet::new();
    for address in addresses {
        if address.trim().is_empty() {
            return Err(invalid("--web.listen-address", "an address is empty"));
        }
        if !seen.insert(address.as_str()) {
            return Err(invalid(
                "--web.listen-address",
                format!("{address:?} is given twice"),
            ));
        }
    }
    Ok(Listen::Addresses(addresses.to_vec()))
}

/// The flag's duration if given, else the file's, else `default`; each pair is
/// (where it was set, for the error, and its text).
fn pick_duration(
    (flag_name, flag): (&str, Option<&str>),
    (key, file): (&str, Option<&str>),
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, file) {
        (Some(text), _) => parse_duration(flag_name, text),
        (None, Some(text)) => parse_duration(key, text),
        (None, None) => Ok(default),
    }
}

/// Parses a Prometheus-style duration (`30s`, `5m`, `1h30m`, `500ms`); zero is refused
/// because every duration here is an interval or a timeout.
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            key,
            format!("invalid duration {text:?} ({e}); use e.g. 30s, 5m, 1h30m"),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(
            key,
            format!("must be greater than 0, got {text:?}"),
        ));
    }
    Ok(d)
}

fn check_rate(key: &str, rate: f64) -> Result<f64, ConfigError> {
    if !rate.is_finite() || rate <= 0.0 {
        return Err(invalid(
            key,
            format!("must be a number of requests per second greater than 0, got {rate}"),
        ));
    }
    Ok(rate)
}

fn check_pacing(key: &str, pacing: f64) -> Result<f64, ConfigError> {
    if !(0.0..=1.0).contains(&pacing) {
        return Err(invalid(
            key,
            format!("must be a fraction of the poll interval from 0 to 1 (0: as fast as --ses.rate allows), got {pacing}"),
        ));
    }
    Ok(pacing)
}

fn compile_regexes(key: &str, patterns: &[String]) -> Result<Vec<Regex>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| invalid(format!("{key}[{i}]"), format!("invalid regex {p:?}: {e}")))
        })
        .collect()
}

/// Trims, lower-cases domain names (DNS is case-insensitive and SES stores domains
/// lower-cased) and drops duplicates, keeping the file's order.
fn normalise_identities(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid(format!("identities[{i}]"), "empty identity"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                format!("identities[{i}]"),
                format!("{name:?} contains white space or control characters"),
            ));
        }
        let name = match IdentityType::of(name) {
            IdentityType::Domain => name.to_ascii_lowercase(),
            IdentityType::EmailAddress => name.to_owned(),
        };
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut argv = vec!["ses-identity-exporter"];
        argv.extend_from_slice(args);
        Flags::try_parse_from(argv).expect("flags parse")
    }

    fn from_yaml(args: &[&str], yaml: &str) -> Result<Config, ConfigError> {
        let raw: RawFile = serde_yaml::from_str(yaml).map_err(|source| ConfigError::Parse {
            path: "test.yaml".into(),
            source,
        })?;
        validate(flags(args), Some(raw))
    }

    #[test]
    fn listen_addresses_repeat_or_come_comma_separated() {
        let c = validate(
            flags(&[
                "--web.listen-address",
                "127.0.0.1:1",
                "--web.listen-address",
                "[::1]:1",
            ]),
            None,
        )
        .expect("valid");
        let both = Listen::Addresses(vec!["127.0.0.1:1".to_owned(), "[::1]:1".to_owned()]);
        assert_eq!(c.listen, both);
        let c = validate(flags(&["--web.listen-address=127.0.0.1:1,[::1]:1"]), None).unwrap();
        assert_eq!(c.listen, both);
        let err = validate(
            flags(&[
                "--web.listen-address=127.0.0.1:1",
                "--web.listen-address=127.0.0.1:1",
            ]),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--web.listen-address: \"127.0.0.1:1\" is given twice"
        );
        let err = validate(flags(&["--web.listen-address="]), None).unwrap_err();
        assert_eq!(err.to_string(), "--web.listen-address: an address is empty");
    }

    #[test]
    fn the_systemd_socket_replaces_the_addresses() {
        let c = validate(
            flags(&["--web.systemd-socket", "--web.listen-address=127.0.0.1:1"]),
            None,
        )
        .unwrap();
        assert_eq!(c.listen, Listen::SystemdSocket);
    }

    #[test]
    fn no_config_discovers_everything() {
        let c = validate(flags(&[]), None).expect("valid");
        let d = c.identities.discovery.expect("discovery on");
        assert_eq!(d.identity_type, DiscoveryType::All);
        assert_eq!(d.interval, DEFAULT_DISCOVERY_INTERVAL);
        assert!(c.identities.fixed.is_empty());
        assert_eq!(c.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(c.ses.rate, 1.0);
        assert_eq!(c.ses.pacing, 0.8);
        assert_eq!(c.ses.timeout, DEFAULT_SES_TIMEOUT);
        assert_eq!(c.listen, Listen::Addresses(vec![":10150".to_owned()]));
        assert_eq!(c.telemetry_path, "/metrics");
    }

    #[test]
    fn static_list_turns_discovery_off_unless_asked() {
        let c =
            from_yaml(&[], "identities: [Example.COM, a@Example.com, example.com]").expect("valid");
        assert_eq!(c.identities.fixed, vec!["example.com", "a@Example.com"]);
        assert!(c.identities.discovery.is_none());
        let c =
            from_yaml(&[], "identities: [example.com]\ndiscovery: {enabled: true}").expect("valid");
        assert!(c.identities.discovery.is_some());
    }

    #[test]
    fn flags_override_the_file() {
        let yaml = "identities: [example.com]\npoll: {interval: 10m}\nses: {rate: 2, pacing: 0.5, timeout: 3s}";
        let c = from_yaml(
            &[
                "--poll.interval",
                "1m",
                "--ses.rate",
                "0.5",
                "--ses.pacing",
                "0",
                "--ses.timeout",
                "2s",
            ],
            yaml,
        )
        .expect("valid");
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!(c.ses.rate, 0.5);
        assert_eq!(c.ses.pacing, 0.0);
        assert_eq!(c.ses.timeout, Duration::from_secs(2));
        let c = from_yaml(&[], yaml).expect("valid");
        assert_eq!(c.poll_interval, Duration::from_secs(600));
        assert_eq!(c.ses.rate, 2.0);
        assert_eq!(c.ses.pacing, 0.5);
    }

    #[test]
    fn account_supersedes_quota_and_reasons_need_a_finding_collector() {
        let c =
            validate(flags(&["--collector.account", "--collector.quota"]), None).expect("valid");
        assert!(c.collectors.is_on("account"));
        assert!(!c.collectors.is_on("quota"), "no family written twice");
        assert_eq!(c.superseded.len(), 1);
        let c = validate(flags(&["--collector.quota"]), None).expect("valid");
        assert!(c.collectors.is_on("quota") && c.superseded.is_empty());

        let err = validate(flags(&["--collector.identity_reasons"]), None).expect_err("alone");
        assert!(
            err.to_string()
                .starts_with("--collector.identity_reasons: it explains the identities"),
            "{err}"
        );
        let c = validate(
            flags(&[
                "--collector.identity_reasons",
                "--collector.dkim",
                "--collector.identity_reasons.calls-per-cycle",
                "5",
                "--collector.verification.source",
                "list",
            ]),
            None,
        )
        .expect("with dkim");
        assert_eq!(c.collector_options.reasons_per_cycle, 5);
        assert_eq!(
            c.collector_options.verification_source,
            crate::collector::VerificationSource::List
        );
    }

    #[test]
    fn pacing_is_a_fraction_from_0_to_1() {
        for ok in ["0", "0.25", "1"] {
            let c = validate(flags(&["--ses.pacing", ok]), None).expect(ok);
            assert_eq!(c.ses.pacing, ok.parse::<f64>().unwrap());
        }
        for bad in ["-0.1", "1.5", "NaN", "inf"] {
            let err = validate(flags(&["--ses.pacing", bad]), None).expect_err(bad);
            assert!(
                err.to_string().starts_with(
                    "--ses.pacing: must be a fraction of the poll interval from 0 to 1"
                ),
                "{bad}: {err}"
            );
        }
        let err = from_yaml(&[], "ses: {pacing: 2}").expect_err("2");
        assert!(err.to_string().starts_with("ses.pacing: "), "{err}");
    }

    #[test]
    fn filters_are_anchored() {
        let c = from_yaml(
            &[],
            "discovery: {include: ['.*\\.example\\.com'], exclude: ['test\\..*']}",
        )
        .expect("valid");
        let d = c.identities.discovery.expect("on");
        assert!(d.admits("mail.example.com"));
        assert!(!d.admits("mail.example.com.evil.org"));
        assert!(!d.admits("test.example.com"));
        assert!(!d.admits("example.org"));
    }

    #[test]
    fn durations_accept_prometheus_forms() {
        for (text, secs) in [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400)] {
            assert_eq!(
                parse_duration("k", text).expect(text),
                Duration::from_secs(secs)
            );
        }
        assert_eq!(
            parse_duration("k", "500ms").expect("ms"),
            Duration::from_millis(500)
        );
    }
}
