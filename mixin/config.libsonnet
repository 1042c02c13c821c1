// What a user of the mixin sets: override any field, e.g.
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="ses"' } }
{
  _config+:: {
    // The series selector of every rule and of the dashboard's `job` variable: it
    // must match the `job` label Prometheus gives the exporter's targets (a Helm
    // release name or a kustomize namePrefix changes it).
    selector: 'job="ses-identity-exporter"',

    // The project's public repository. Declared here and as Cargo.toml's
    // `repository` (a test checks they agree); the runbook links derive from it.
    repository: 'https://github.com/ses-identity-exporter/ses-identity-exporter',

    // Base of each alert's `runbook_url` annotation (the alert's name, lower-cased,
    // is the anchor): absolute, so a link in Slack or PagerDuty opens. Point it at
    // your own copy of docs/runbook.md if you keep one.
    runbookURL: self.repository + '/blob/main/docs/runbook.md',

    // Extra series matchers for SesAccountInSandbox, for accounts (or regions) meant
    // to stay in the SES sandbox, such as development accounts, which would otherwise
    // warn for as long as they exist: e.g. 'aws_account_id!~"111111111111|222222222222"'.
    // Empty: every account in the sandbox warns.
    sandboxSelector: '',

    // Each alert's severity, `for` and `keep_firing_for`. docs/semantics.md's table
    // and the Alertmanager example are written for these defaults.
    alerts: {
      SesMailFromFailedRejectingMail: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesMailFromFailed: { severity: 'warning', 'for': '3m', keep_firing_for: '10m' },
      SesMailFromTemporaryFailureRejectingMail: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesMailFromPendingRejectingMail: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesMailFromStatusUnknownRejectingMail: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesMailFromTemporaryFailure: { severity: 'warning', 'for': '30m', keep_firing_for: '10m' },
      SesMailFromPendingTooLong: { severity: 'warning', 'for': '2h', keep_firing_for: '10m' },
      SesIdentityNotFound: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesIdentityStateUnknown: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesMailFromMxWrongRejectingMail: { severity: 'critical', 'for': '10m', keep_firing_for: '10m' },
      SesMailFromMxWrong: { severity: 'warning', 'for': '10m', keep_firing_for: '10m' },
      SesMailFromSpfMissing: { severity: 'warning', 'for': '30m', keep_firing_for: '10m' },
      SesMailFromSpfPermError: { severity: 'warning', 'for': '30m', keep_firing_for: '10m' },
      SesMailFromDnsStale: { severity: 'warning', 'for': '10m', keep_firing_for: '10m' },
      SesIdentityVerificationFailed: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesIdentityNotVerified: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesIdentityVerificationTemporaryFailure: { severity: 'warning', 'for': '1h', keep_firing_for: '10m' },
      SesDkimFailed: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesDkimRecordsMissing: { severity: 'warning', 'for': '10m', keep_firing_for: '10m' },
      SesVerificationRecordMissing: { severity: 'warning', 'for': '10m', keep_firing_for: '10m' },
      SesDmarcRejectsIdentityMail: { severity: 'critical', 'for': '10m', keep_firing_for: '10m' },
      SesDmarcQuarantinesIdentityMail: { severity: 'warning', 'for': '30m', keep_firing_for: '10m' },
      SesSendQuotaNearlyUsed: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesSendQuotaExhausted: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesAccountSendingDisabled: { severity: 'critical', 'for': '5m', keep_firing_for: '10m' },
      SesAccountSendingPaused: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesAccountUnderReview: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesAccountInSandbox: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesReputationEntityDisabled: { severity: 'critical', 'for': '3m', keep_firing_for: '10m' },
      SesReputationEntityStateUnknown: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesAccountStateUnknown: { severity: 'warning', 'for': '15m', keep_firing_for: '10m' },
      SesExporterTaskRestarting: { severity: 'warning' },
      SesExporterDown: { severity: 'warning', 'for': '5m' },
      SesExporterStale: { severity: 'warning', 'for': '5m' },
      SesExporterThrottled: { severity: 'warning', 'for': '30m' },
      SesExporterRequestsFailing: { severity: 'warning', 'for': '30m' },
      SesExporterDuplicateTarget: { severity: 'warning', 'for': '5m' },
      SesExporterWebConfigReloadFailed: { severity: 'warning', 'for': '10m' },
      SesExporterAbsent: { severity: 'critical', 'for': '10m' },
    },
  },
}
