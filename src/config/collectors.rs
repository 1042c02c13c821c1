//! Which collectors run: the node_exporter style `--collector.NAME` and
//! `--no-collector.NAME` switches ([`CollectorFlags`], flattened into
//! [`Flags`](super::Flags)) and the [`Collectors`] they turn into, all in one place.
//! The dns collector's switch is here too, but its settings are `Config::dns`, not
//! part of [`Collectors`].

use super::{invalid, ConfigError};

/// The collector switches as parsed, flattened into [`Flags`](super::Flags). The
/// field names are the clap ids that `overrides_with` pairs up.
#[derive(Debug, clap::Args)]
pub struct CollectorFlags {
    /// The mail_from collector: GetIdentityMailFromDomainAttributes (on by default).
    #[arg(
        long = "collector.mail_from",
        env = "SES_EXPORTER_COLLECTOR_MAIL_FROM",
        overrides_with = "no_collector_mail_from"
    )]
    pub collector_mail_from: bool,

    /// Switch the mail_from collector off.
    #[arg(
        long = "no-collector.mail_from",
        env = "SES_EXPORTER_NO_COLLECTOR_MAIL_FROM",
        overrides_with = "collector_mail_from"
    )]
    pub no_collector_mail_from: bool,

    /// The dkim collector: GetIdentityDkimAttributes, each identity's DKIM state (off
    /// by default: it needs ses:GetIdentityDkimAttributes in the IAM policy).
    #[arg(
        long = "collector.dkim",
        env = "SES_EXPORTER_COLLECTOR_DKIM",
        overrides_with = "no_collector_dkim"
    )]
    pub collector_dkim: bool,

    /// Switch the dkim collector off.
    #[arg(
        long = "no-collector.dkim",
        env = "SES_EXPORTER_NO_COLLECTOR_DKIM",
        overrides_with = "collector_dkim"
    )]
    pub no_collector_dkim: bool,

    /// The verification collector: GetIdentityVerificationAttributes, each
    /// identity's verification state (off by default: it needs
    /// ses:GetIdentityVerificationAttributes).
    #[arg(
        long = "collector.verification",
        env = "SES_EXPORTER_COLLECTOR_VERIFICATION",
        overrides_with = "no_collector_verification"
    )]
    pub collector_verification: bool,

    /// Switch the verification collector off.
    #[arg(
        long = "no-collector.verification",
        env = "SES_EXPORTER_NO_COLLECTOR_VERIFICATION",
        overrides_with = "collector_verification"
    )]
    pub no_collector_verification: bool,

    /// The quota collector: GetSendQuota and GetAccountSendingEnabled per target
    /// (off by default: it needs ses:GetSendQuota and ses:GetAccountSendingEnabled).
    #[arg(
        long = "collector.quota",
        env = "SES_EXPORTER_COLLECTOR_QUOTA",
        overrides_with = "no_collector_quota"
    )]
    pub collector_quota: bool,

    /// Switch the quota collector off.
    #[arg(
        long = "no-collector.quota",
        env = "SES_EXPORTER_NO_COLLECTOR_QUOTA",
        overrides_with = "collector_quota"
    )]
    pub no_collector_quota: bool,

    /// Look up each custom MAIL FROM domain's MX and SPF records in DNS (the dns
    /// collector; on by default).
    #[arg(
        long = "collector.dns",
        env = "SES_EXPORTER_COLLECTOR_DNS",
        overrides_with = "no_collector_dns"
    )]
    pub collector_dns: bool,

    /// Switch the dns collector off.
    #[arg(
        long = "no-collector.dns",
        env = "SES_EXPORTER_NO_COLLECTOR_DNS",
        overrides_with = "collector_dns"
    )]
    pub no_collector_dns: bool,
}

impl CollectorFlags {
    /// The SES collectors switched on; an error when none is.
    pub(super) fn enabled(&self) -> Result<Collectors, ConfigError> {
        let collectors = Collectors {
            mail_from: !self.no_collector_mail_from,
            dkim: self.collector_dkim,
            verification: self.collector_verification,
            quota: self.collector_quota,
        };
        if collectors.names().is_empty() {
            return Err(invalid(
                "--no-collector.mail_from",
                "every collector is off: enable at least one of --collector.mail_from, --collector.dkim, --collector.verification, --collector.quota",
            ));
        }
        Ok(collectors)
    }

    /// Whether the dns collector runs.
    pub(super) fn dns_enabled(&self) -> bool {
        !self.no_collector_dns
    }
}

/// Which collectors run (node_exporter style `--collector.NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors {
    pub mail_from: bool,
    pub dkim: bool,
    pub verification: bool,
    pub quota: bool,
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            mail_from: true,
            dkim: false,
            verification: false,
            quota: false,
        }
    }
}

impl Collectors {
    /// The enabled collectors' names, as in the flags and the `collector` label.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.mail_from, "mail_from"),
            (self.dkim, "dkim"),
            (self.verification, "verification"),
            (self.quota, "quota"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Collectors that call an operation per batch of 100 identities.
    pub fn per_identity(&self) -> usize {
        [self.mail_from, self.dkim, self.verification]
            .into_iter()
            .filter(|on| *on)
            .count()
    }
}
