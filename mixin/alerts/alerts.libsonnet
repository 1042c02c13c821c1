// The alert rules, written once: every series selector is the mixin's
// `%(selector)s`, each rule's `for`, `keep_firing_for` and severity come from
// `_config.alerts`, and its runbook link from `_config.runbookURL`.
// Generated files: deploy/prometheus/alerts.yml, deploy/kubernetes/base/prometheusrule.yaml
// (`make mixin`). Conventions of the rules:
// - Identity alerts aggregate `by (job, aws_account_id, aws_region, identity)`, account
//   alerts `by (job, aws_account_id, aws_region)`, reputation entity alerts by those and
//   the entity's labels (`entity_reference`, `entity_type`, `resource_type`,
//   `resource_name`, and `identity` for an identity), so the pod or instance of the
//   exporter is not part of an alert's identity: a restarted exporter (new pod IP)
//   continues the same alert.
// - They read the identity series through `last_over_time(...[10m])`, so the few minutes
//   an exporter needs to restart and finish its first cycle (series absent) neither
//   resolve a firing alert nor reset a pending `for:`; `keep_firing_for` keeps
//   notifications steady across longer gaps.
// - Health alerts use aws_ses_exporter_poll_interval_seconds instead of hard-coded
//   times, so they follow --poll.interval.
{
  local config = self._config,
  // What the expressions are formatted with: `_config`, and `sandboxMatchers`, the
  // `_config.sandboxSelector` to append to a selector (with its comma), or nothing.
  local format = config {
    sandboxMatchers:: if config.sandboxSelector == '' then '' else ',' + config.sandboxSelector,
  },

  // One alerting rule: its expression formatted with `_config`, its timing and
  // severity from `_config.alerts[name]`, its runbook link from its name.
  local rule(name, expr, summary, description) =
    local timing = config.alerts[name];
    {
      alert: name,
      expr: expr % format,
    }
    + (if 'for' in timing then { 'for': timing['for'] } else {})
    + (if 'keep_firing_for' in timing then { keep_firing_for: timing.keep_firing_for } else {})
    + {
      labels: { severity: timing.severity },
      annotations: {
        summary: summary,
        description: description,
        runbook_url: '%s#%s' % [config.runbookURL, std.asciiLower(name)],
      },
    },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ses-identity-exporter.identities',
        rules: [
          rule(
            'SesMailFromFailedRejectingMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Failed"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES refuses mail from {{ $labels.identity }}: MAIL FROM domain failed',
            'SES reports the custom MAIL FROM domain {{ $labels.mail_from_domain }} of identity {{ $labels.identity }} as Failed (its MX record is missing or wrong) and BehaviorOnMXFailure is RejectMessage: every send from this identity fails with MailFromDomainNotVerified.',
          ),
          rule(
            'SesMailFromFailed',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Failed"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="UseDefaultValue"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'MAIL FROM domain of {{ $labels.identity }} failed: mail falls back to amazonses.com',
            'SES reports the custom MAIL FROM domain {{ $labels.mail_from_domain }} of identity {{ $labels.identity }} as Failed. BehaviorOnMXFailure is UseDefaultValue, so mail still flows with an amazonses.com MAIL FROM, but SPF no longer aligns with the sender domain for DMARC.',
          ),
          rule(
            'SesMailFromTemporaryFailureRejectingMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="TemporaryFailure"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES refuses mail from {{ $labels.identity }}: MAIL FROM domain in TemporaryFailure',
            'SES could not verify the MX record of MAIL FROM domain {{ $labels.mail_from_domain }} (identity {{ $labels.identity }}) (TemporaryFailure) and BehaviorOnMXFailure is RejectMessage: SES refuses every send from this identity until the domain is back in Success.',
          ),
          rule(
            'SesMailFromPendingRejectingMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Pending"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES refuses mail from {{ $labels.identity }}: MAIL FROM domain not verified yet (Pending)',
            'SES has not verified the MX record of the custom MAIL FROM domain {{ $labels.mail_from_domain }} of identity {{ $labels.identity }} (Pending: just set, or its MX record was never published or is wrong) and BehaviorOnMXFailure is RejectMessage: SES applies the behavior in every state but Success, so it refuses every send from this identity until the domain turns Success.',
          ),
          rule(
            'SesMailFromStatusUnknownRejectingMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Unknown"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES most likely refuses mail from {{ $labels.identity }}: MAIL FROM status not Success',
            'SES reported no MailFromDomainStatus, or one this exporter does not know, for the custom MAIL FROM domain {{ $labels.mail_from_domain }} of identity {{ $labels.identity }}, and BehaviorOnMXFailure is RejectMessage. SES refuses mail in every state but Success. Check the state with aws ses get-identity-mail-from-domain-attributes.',
          ),
          rule(
            'SesMailFromTemporaryFailure',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="TemporaryFailure"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="UseDefaultValue"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'MAIL FROM domain of {{ $labels.identity }} in TemporaryFailure for 30 minutes',
            'SES could not verify the MX record of MAIL FROM domain {{ $labels.mail_from_domain }} (identity {{ $labels.identity }}) for 30 minutes. Mail goes out with an amazonses.com MAIL FROM meanwhile (no SPF alignment for DMARC).',
          ),
          rule(
            'SesMailFromPendingTooLong',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Pending"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="UseDefaultValue"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'MAIL FROM domain of {{ $labels.identity }} still Pending after 2 hours',
            'SES has not verified the custom MAIL FROM domain {{ $labels.mail_from_domain }} of identity {{ $labels.identity }} for 2 hours. BehaviorOnMXFailure is UseDefaultValue, so mail goes out with an amazonses.com MAIL FROM meanwhile (no SPF alignment for DMARC). Check that the MX and SPF records exist.',
          ),
          rule(
            'SesIdentityNotFound',
            'max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_exists{%(selector)s}[10m])) == 0',
            'SES does not know the listed identity {{ $labels.identity }}: mail from it is refused',
            'The identity {{ $labels.identity }} is in the exporter configuration but SES does not return it in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }} (or refuses the name as invalid): SES refuses mail from an identity it does not have. It was deleted, never verified here, is in another region or account, or the credentials cannot see it.',
          ),
          rule(
            'SesIdentityStateUnknown',
            |||
              label_replace(
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Unknown"}[10m])) == 1
                unless on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1,
                "field", "MailFromDomainStatus", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="Unknown"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_configured{%(selector)s}[10m])) == 1,
                "field", "BehaviorOnMXFailure", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_verification_status{%(selector)s,status="Unknown"}[10m])) == 1,
                "field", "VerificationStatus", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_status{%(selector)s,status="Unknown"}[10m])) == 1,
                "field", "DkimVerificationStatus", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_status{%(selector)s}[10m]))
                unless on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_enabled{%(selector)s}[10m])),
                "field", "DkimEnabled", "", "")
            |||,
            'SES did not say {{ $labels.field }} of {{ $labels.identity }} ({{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'SES\'s answer for identity {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, has no {{ $labels.field }}, or a value this exporter does not know, so the exporter cannot tell whether SES sends its mail (it never guesses). Check the identity with the AWS CLI and the exporter\'s version.',
          ),
          rule(
            'SesMailFromMxWrongRejectingMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_mx_correct{%(selector)s}[10m])) == 0
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Success"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="RejectMessage"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES will fail the MAIL FROM domain of {{ $labels.identity }} and then refuse its mail',
            'The MX record of {{ $labels.mail_from_domain }}, the custom MAIL FROM domain of {{ $labels.identity }}, does not point at the region\'s feedback-smtp.<region>.amazonses.com (looked up by the exporter), while SES still reports Success. At its next check SES will mark the domain Failed, and with BehaviorOnMXFailure RejectMessage every send from this identity will then fail. Restore the MX record now.',
          ),
          rule(
            'SesMailFromMxWrong',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_mx_correct{%(selector)s}[10m])) == 0
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_status{%(selector)s,status="Success"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_behavior_on_mx_failure{%(selector)s,behavior="UseDefaultValue"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'SES will fail the MAIL FROM domain of {{ $labels.identity }}',
            'The MX record of {{ $labels.mail_from_domain }}, the custom MAIL FROM domain of {{ $labels.identity }}, does not point at the region\'s feedback-smtp.<region>.amazonses.com (looked up by the exporter), while SES still reports Success. At its next check SES will mark the domain Failed and send with amazonses.com as MAIL FROM (BehaviorOnMXFailure UseDefaultValue): SPF alignment for DMARC is lost. Restore the MX record.',
          ),
          rule(
            'SesMailFromSpfMissing',
            |||
              (max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_spf_correct{%(selector)s}[10m])) == 0)
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'The MAIL FROM domain of {{ $labels.identity }} has no SPF record including amazonses.com',
            '{{ $labels.mail_from_domain }}, the custom MAIL FROM domain of {{ $labels.identity }}, has no single SPF record with include:amazonses.com (looked up by the exporter): receivers cannot pass SPF for mail SES sends, so DMARC alignment through SPF is lost.',
          ),
          rule(
            'SesMailFromSpfPermError',
            |||
              (max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_mail_from_spf_status{%(selector)s,status="permerror"}[10m])) == 1)
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'The SPF record of the MAIL FROM domain of {{ $labels.identity }} is broken (permerror): receivers fail SPF for its mail',
            'SPF\'s evaluation of {{ $labels.mail_from_domain }}, the custom MAIL FROM domain of {{ $labels.identity }}, for an address SES sends from ends in permerror (evaluated by the exporter): two SPF records, a syntax error, or more than 10 DNS-querying terms (include, a, mx, ptr, exists, redirect) along its include chain. Receivers treat a permerror as a failure for all mail from the domain, so SPF does not pass and DMARC alignment through SPF is lost.',
          ),
          rule(
            'SesMailFromDnsStale',
            |||
              (
                (time() - max by (job, aws_account_id, aws_region, identity, record_type) (last_over_time(aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds{%(selector)s}[10m])))
                > on (job) group_left ()
                (3 * max by (job) (last_over_time(aws_ses_exporter_poll_interval_seconds{%(selector)s}[10m])))
              )
              * on (job, aws_account_id, aws_region, identity) group_left (mail_from_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, mail_from_domain) (last_over_time(aws_ses_identity_mail_from_info{%(selector)s}[10m])))
            |||,
            'The {{ $labels.record_type }} verdict on the MAIL FROM domain of {{ $labels.identity }} is stale: DNS has not answered it for 3 poll intervals',
            'DNS last answered the exporter\'s {{ $labels.record_type }} lookup of {{ $labels.mail_from_domain }}, the custom MAIL FROM domain of {{ $labels.identity }}, {{ $value | humanizeDuration }} ago, more than 3 poll intervals: the lookups since then failed (timeout, SERVFAIL, error) or did not run. {{ if eq $labels.record_type "spf_evaluation" }}aws_ses_identity_mail_from_spf_status{{ else }}aws_ses_identity_mail_from_{{ $labels.record_type }}_correct{{ end }} still shows that old answer, and the MX and SPF alerts judge the domain by it. Check aws_ses_identity_mail_from_dns_lookup and whether the domain\'s name servers answer.',
          ),
          rule(
            'SesIdentityVerificationFailed',
            'max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_verification_status{%(selector)s,status="Failed"}[10m])) == 1',
            'SES identity {{ $labels.identity }} is no longer verified ({{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'SES reports the verification of identity {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, as Failed: SES does not send mail from an identity that is not verified. For a domain, its _amazonses TXT record (or the DKIM CNAMEs used to verify it) is gone or wrong.',
          ),
          rule(
            'SesIdentityNotVerified',
            'max by (job, aws_account_id, aws_region, identity, status) (last_over_time(aws_ses_identity_verification_status{%(selector)s,status=~"Pending|NotStarted"}[10m])) == 1',
            'SES refuses mail from {{ $labels.identity }}: identity not verified ({{ $labels.status }})',
            'SES reports identity {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, as {{ $labels.status }}: it is not verified, and SES sends no mail from an identity that is not verified. A new identity is in this state until its DNS records (domain) or its verification link (address) are done.',
          ),
          rule(
            'SesIdentityVerificationTemporaryFailure',
            'max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_verification_status{%(selector)s,status="TemporaryFailure"}[10m])) == 1',
            'SES cannot confirm the verification of {{ $labels.identity }} (TemporaryFailure)',
            'SES reports the verification of identity {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, as TemporaryFailure for an hour: it could not look up the domain\'s verification record (DNS timeouts, SERVFAIL). If the record is really gone, SES fails the identity and then refuses its mail.',
          ),
          rule(
            'SesDkimFailed',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_status{%(selector)s,status="Failed"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_enabled{%(selector)s}[10m])) == 1
              )
            |||,
            'DKIM of {{ $labels.identity }} failed ({{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'SES reports the DKIM verification of {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, as Failed while DKIM signing is enabled: SES cannot find the DKIM CNAME records, so mail is not signed with the identity\'s domain and DMARC alignment through DKIM is lost.',
          ),
          rule(
            'SesDkimRecordsMissing',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (sum without (state) (last_over_time(aws_ses_identity_dkim_dns_records{%(selector)s,state=~"missing|elsewhere"}[10m]))) > 0
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dkim_status{%(selector)s,status="Success"}[10m])) == 1
              )
            |||,
            'SES will fail DKIM of {{ $labels.identity }}, then its verification: Easy DKIM records missing',
            '{{ $value }} of the Easy DKIM CNAME records (<token>._domainkey.<domain>) of {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, are missing or point elsewhere (looked up by the exporter) while SES still reports DKIM Success. Receivers already fail DKIM for the mail SES signs with them (they cannot fetch the key), so DMARC alignment through DKIM is lost now. At its next check SES marks DKIM Failed and stops signing with the domain, and a domain verified through these records (no _amazonses TXT record) then fails verification: SES refuses its mail. Restore the CNAMEs from aws ses get-identity-dkim-attributes, each to <token>.<the signing zone aws sesv2 get-email-identity names>.',
          ),
          rule(
            'SesVerificationRecordMissing',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_verification_dns_record{%(selector)s,state=~"missing|elsewhere"}[10m])) == 1
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_verification_status{%(selector)s,status="Success"}[10m])) == 1
              )
            |||,
            'SES will fail the verification of {{ $labels.identity }}: its _amazonses TXT record is gone or wrong',
            'The TXT record at _amazonses.{{ $labels.identity }} of domain identity {{ $labels.identity }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, is missing or no longer holds the VerificationToken SES gave (looked up by the exporter) while SES still reports its verification Success. The domain\'s Easy DKIM is not verified, so this legacy record is what keeps it verified: SES fails the verification at its next checks (it retries for up to 72 hours) and then refuses the identity\'s mail. Restore the TXT record with the token from aws ses get-identity-verification-attributes, or set up Easy DKIM (its CNAME records verify the domain too).',
          ),
          // The DMARC verdicts: the alert's value is the record's pct, its
          // record_domain where the record was found.
          rule(
            'SesDmarcRejectsIdentityMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dmarc_pct{%(selector)s}[10m]))
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dmarc_verdict{%(selector)s,verdict="reject"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (record_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, record_domain) (last_over_time(aws_ses_identity_dmarc_policy_info{%(selector)s}[10m])))
            |||,
            'Receivers will reject the mail SES sends for {{ $labels.identity }}: DMARC fails and its policy is reject',
            'Neither SPF nor DKIM passes aligned with the From domain of {{ $labels.identity }} (judged by the exporter: no custom MAIL FROM domain in Success whose SPF record authorizes SES and aligns, no verified Easy DKIM with its CNAME records in place whose d= domain aligns), and the DMARC record at _dmarc.{{ $labels.record_domain }} applies reject to it (pct={{ $value }}). SES sends the mail without an error; receivers enforcing DMARC refuse it{{ if lt $value 100.0 }} (receivers following RFC 7489 that share of it, quarantining the rest; receivers following RFC 9989, DMARCbis, ignore pct and refuse all of it){{ end }}. Restore SPF alignment (the custom MAIL FROM domain and its MX and SPF records) or DKIM (Easy DKIM and its CNAME records).',
          ),
          rule(
            'SesDmarcQuarantinesIdentityMail',
            |||
              (
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dmarc_pct{%(selector)s}[10m]))
                and on (job, aws_account_id, aws_region, identity)
                max by (job, aws_account_id, aws_region, identity) (last_over_time(aws_ses_identity_dmarc_verdict{%(selector)s,verdict="quarantine"}[10m])) == 1
              )
              * on (job, aws_account_id, aws_region, identity) group_left (record_domain)
              topk by (job, aws_account_id, aws_region, identity) (1, max by (job, aws_account_id, aws_region, identity, record_domain) (last_over_time(aws_ses_identity_dmarc_policy_info{%(selector)s}[10m])))
            |||,
            'Receivers will put the mail SES sends for {{ $labels.identity }} in spam: DMARC fails and its policy quarantines',
            'Neither SPF nor DKIM passes aligned with the From domain of {{ $labels.identity }} (judged by the exporter: no custom MAIL FROM domain in Success whose SPF record authorizes SES and aligns, no verified Easy DKIM with its CNAME records in place whose d= domain aligns), and the DMARC record at _dmarc.{{ $labels.record_domain }} {{ if eq $value 0.0 }}says reject with pct=0, which receivers following RFC 7489 apply as quarantine; receivers following RFC 9989 (DMARCbis) ignore pct and refuse this mail{{ else }}applies quarantine to it (pct={{ $value }}){{ end }}. SES sends the mail without an error; receivers enforcing DMARC deliver it to spam. Restore SPF alignment (the custom MAIL FROM domain and its MX and SPF records) or DKIM (Easy DKIM and its CNAME records).',
          ),
          rule(
            'SesSendQuotaNearlyUsed',
            |||
              (
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_sent_emails{%(selector)s}[10m]))
                /
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_max_emails{%(selector)s}[10m]) > 0)
              ) > 0.8
            |||,
            'SES account {{ $labels.aws_account_id }} has used {{ $value | humanizePercentage }} of its 24-hour quota in {{ $labels.aws_region }}',
            'Account {{ $labels.aws_account_id }} sent more than 80% of its 24-hour sending quota in {{ $labels.aws_region }} (GetSendQuota, or GetAccount\'s SendQuota). At 100% SES refuses further mail until the window moves on. Request a quota increase or slow the senders down.',
          ),
          rule(
            'SesSendQuotaExhausted',
            |||
              max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_sent_emails{%(selector)s}[10m]))
              >= on (job, aws_account_id, aws_region)
              max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_max_emails{%(selector)s}[10m]) > 0)
            |||,
            'SES refuses mail from account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}: 24-hour quota used up',
            'Account {{ $labels.aws_account_id }} has sent its whole 24-hour sending quota in {{ $labels.aws_region }} (SentLast24Hours >= Max24HourSend, from GetSendQuota or GetAccount): SES refuses every further send until mail older than 24 hours leaves the window. Request a quota increase.',
          ),
          rule(
            'SesAccountSendingDisabled',
            'max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_sending_enabled{%(selector)s}[10m])) == 0',
            'SES sending is disabled for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}',
            'SES reports sending as disabled for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} (GetAccountSendingEnabled, or GetAccount\'s SendingEnabled): SES sends no mail from this account in this region. AWS pauses sending when bounce or complaint rates are too high; someone may also have paused it (UpdateAccountSendingEnabled).',
          ),
          rule(
            'SesAccountSendingPaused',
            'max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_enforcement_status{%(selector)s,status="SHUTDOWN"}[10m])) == 1',
            'SES has paused sending for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} (SHUTDOWN): every send is refused',
            'GetAccount reports EnforcementStatus SHUTDOWN for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}: AWS has paused the account\'s sending there, usually for its bounce or complaint rate or after a review whose issue was not fixed, and SES refuses every send of the account in the region, from every identity. Only AWS lifts the pause: read its notice (the email to the account\'s contacts, the Support case), fix the cause, and ask for a review.',
          ),
          rule(
            'SesAccountUnderReview',
            'max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_enforcement_status{%(selector)s,status="PROBATION"}[10m])) == 1',
            'SES has put account {{ $labels.aws_account_id }} under review in {{ $labels.aws_region }} (PROBATION): fix it before AWS pauses sending',
            'GetAccount reports EnforcementStatus PROBATION for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}: AWS is reviewing the account, usually for a bounce rate of 5% or more or a complaint rate of 0.1% or more. Mail still flows, but if the issue is not fixed by the end of the review period AWS pauses the account\'s sending (SHUTDOWN: every send refused). Read AWS\'s notice, find and stop the source of the bounces or complaints, and answer the case.',
          ),
          rule(
            'SesAccountInSandbox',
            'max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_production_access_enabled{%(selector)s%(sandboxMatchers)s}[10m])) == 0',
            'SES account {{ $labels.aws_account_id }} is in the sandbox in {{ $labels.aws_region }}: mail to verified recipients only, 200 a day',
            'GetAccount reports ProductionAccessEnabled false for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}: the account is in the SES sandbox there, so SES refuses mail to any recipient that is not a verified identity of the account and sends at most 200 messages a day, 1 a second. Every account starts in the sandbox in every region: request production access for this region. An account meant to stay in the sandbox is left out with the mixin\'s _config.sandboxSelector.',
          ),
          rule(
            'SesAccountStateUnknown',
            |||
              label_replace(
                (
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_sending_enabled_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                  or
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                )
                unless on (job, aws_account_id, aws_region)
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_sending_enabled{%(selector)s}[10m])),
                "field", "Enabled", "", "")
              or
              label_replace(
                (
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                  or
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                )
                unless on (job, aws_account_id, aws_region)
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_max_emails{%(selector)s}[10m])),
                "field", "Max24HourSend", "", "")
              or
              label_replace(
                (
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                  or
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                )
                unless on (job, aws_account_id, aws_region)
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_sent_emails{%(selector)s}[10m])),
                "field", "SentLast24Hours", "", "")
              or
              label_replace(
                (
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                  or
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                )
                unless on (job, aws_account_id, aws_region)
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_send_quota_max_send_rate{%(selector)s}[10m])),
                "field", "MaxSendRate", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_enforcement_status{%(selector)s,status="Unknown"}[10m])) == 1
                or
                (
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                  unless on (job, aws_account_id, aws_region)
                  max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_enforcement_status{%(selector)s}[10m]))
                ),
                "field", "EnforcementStatus", "", "")
              or
              label_replace(
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_last_refresh_timestamp_seconds{%(selector)s}[10m]))
                unless on (job, aws_account_id, aws_region)
                max by (job, aws_account_id, aws_region) (last_over_time(aws_ses_account_production_access_enabled{%(selector)s}[10m])),
                "field", "ProductionAccessEnabled", "", "")
            |||,
            'SES did not say {{ $labels.field }} for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }}',
            'SES answered GetAccount, GetSendQuota or GetAccountSendingEnabled for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} without {{ $labels.field }}, or with a value this exporter does not know: the exporter exports no value for it rather than a made-up one, so the alerts on it (sending paused or disabled, under review, sandbox, quota) cannot fire. Check the account with the AWS CLI and the exporter\'s version.',
          ),
          rule(
            'SesReputationEntityDisabled',
            'max by (job, aws_account_id, aws_region, entity_reference, entity_type, resource_type, resource_name, identity) (last_over_time(aws_ses_reputation_entity_sending_status{%(selector)s,status="DISABLED"}[10m])) == 1',
            'SES refuses mail through {{ if $labels.resource_type }}{{ $labels.resource_type }} {{ $labels.resource_name }}{{ else }}{{ $labels.entity_reference }}{{ end }}: sending disabled ({{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'SES reports the sending status of reputation entity {{ $labels.entity_reference }}{{ if $labels.identity }} (identity {{ $labels.identity }}){{ end }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, as DISABLED: SES, or someone in the account, disabled sending for this {{ if $labels.resource_type }}{{ $labels.resource_type }}{{ else }}resource{{ end }}, and SES refuses every send through it, even while the account itself is HEALTHY. aws_ses_reputation_entity_status_info says which side (source aws_ses or customer) disabled it and why (cause).',
          ),
          rule(
            'SesReputationEntityStateUnknown',
            |||
              label_replace(
                max by (job, aws_account_id, aws_region, entity_reference, entity_type, resource_type, resource_name, identity) (last_over_time(aws_ses_reputation_entity_sending_status{%(selector)s,status="Unknown"}[10m])) == 1
                or
                (
                  max by (job, aws_account_id, aws_region, entity_reference, entity_type, resource_type, resource_name, identity) (last_over_time(aws_ses_reputation_entity_info{%(selector)s}[10m]))
                  unless on (job, aws_account_id, aws_region, entity_reference)
                  max by (job, aws_account_id, aws_region, entity_reference) (last_over_time(aws_ses_reputation_entity_sending_status{%(selector)s}[10m]))
                ),
                "field", "SendingStatusAggregate", "", "")
            |||,
            'SES did not say whether it sends through {{ if $labels.resource_type }}{{ $labels.resource_type }} {{ $labels.resource_name }}{{ else }}{{ $labels.entity_reference }}{{ end }} ({{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'SES listed reputation entity {{ $labels.entity_reference }} in account {{ $labels.aws_account_id }}, {{ $labels.aws_region }}, without a SendingStatusAggregate, or with a value this exporter does not know, so the exporter cannot tell whether SES refuses mail through it (SesReputationEntityDisabled cannot fire for it). Check it with aws sesv2 get-reputation-entity and the exporter\'s version.',
          ),
        ],
      },
      {
        name: 'ses-identity-exporter.exporter',
        rules: [
          rule(
            'SesExporterTaskRestarting',
            'sum by (job, instance, task) (increase(aws_ses_exporter_task_restarts_total{%(selector)s}[15m])) > 0',
            'ses-identity-exporter {{ $labels.instance }} restarted its {{ $labels.task }} task',
            'A background task ({{ $labels.task }}) of ses-identity-exporter at {{ $labels.instance }} panicked or ended and was restarted in the last 15 minutes: a bug. A restarted poller\'s target shows aws_ses_exporter_up 0 until its next cycle. The exporter log has the panic message; please report it.',
          ),
          // One alert per target the down exporter polled that no other exporter of the
          // job still reports (so it can silence exactly those targets' alerts), or one
          // without account labels (which silences nothing) when another replica still
          // reports them or the exporter never reported any.
          rule(
            'SesExporterDown',
            |||
              (
                (
                  max by (job, instance, aws_account_id, aws_region) (last_over_time(aws_ses_exporter_up{%(selector)s}[1h]))
                  * on (job, instance) group_left ()
                  (up{%(selector)s} == 0)
                )
                unless on (job, aws_account_id, aws_region)
                aws_ses_exporter_up{%(selector)s}
              )
              or on (job, instance)
              up{%(selector)s} == 0
            |||,
            'ses-identity-exporter {{ $labels.instance }} cannot be scraped',
            'Prometheus has failed to scrape ses-identity-exporter at {{ $labels.instance }} for 5 minutes: MAIL FROM failures go unnoticed.',
          ),
          rule(
            'SesExporterStale',
            |||
              (
                (
                  (time() - max by (job, instance, aws_account_id, aws_region) (aws_ses_exporter_last_success_timestamp_seconds{%(selector)s}))
                  > on (job, instance) group_left ()
                  (3 * max by (job, instance) (aws_ses_exporter_poll_interval_seconds{%(selector)s}))
                )
                or
                (
                  max by (job, instance, aws_account_id, aws_region) (aws_ses_exporter_up{%(selector)s})
                  unless on (job, instance, aws_account_id, aws_region) aws_ses_exporter_last_success_timestamp_seconds{%(selector)s}
                )
                and on (job, instance)
                (
                  (time() - max by (job, instance) (process_start_time_seconds{%(selector)s}))
                  > 3 * max by (job, instance) (aws_ses_exporter_poll_interval_seconds{%(selector)s})
                )
              )
              # Not while another replica of the job polls the same target successfully:
              # its values are current, and the alerts built on them are right.
              unless on (job, aws_account_id, aws_region)
              (
                (time() - max by (job, instance, aws_account_id, aws_region) (aws_ses_exporter_last_success_timestamp_seconds{%(selector)s}))
                <= on (job, instance) group_left ()
                (3 * max by (job, instance) (aws_ses_exporter_poll_interval_seconds{%(selector)s}))
              )
            |||,
            'ses-identity-exporter {{ $labels.instance }} has not completed a poll cycle of {{ $labels.aws_account_id }}/{{ $labels.aws_region }} for 3 intervals',
            'No poll cycle of ses-identity-exporter at {{ $labels.instance }} fetched everything from SES for account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} for more than 3 poll intervals: its values are stale (an empty account means STS GetCallerIdentity never answered). Check aws_ses_exporter_ses_requests_total and aws_ses_exporter_sts_requests_total by outcome and the exporter log.',
          ),
          rule(
            'SesExporterThrottled',
            |||
              sum by (job, instance, aws_account_id, aws_region, operation) (rate(aws_ses_exporter_ses_requests_total{%(selector)s,outcome="throttled"}[15m]))
              /
              sum by (job, instance, aws_account_id, aws_region, operation) (rate(aws_ses_exporter_ses_requests_total{%(selector)s}[15m]))
              > 0.1
            |||,
            'SES throttles ses-identity-exporter {{ $labels.instance }} ({{ $labels.operation }} in {{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            'More than 10% of the {{ $labels.operation }} requests of ses-identity-exporter at {{ $labels.instance }} to account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} were throttled by SES for 30 minutes: another client shares the account\'s SES API budget there, or --ses.rate is above the account\'s limit.',
          ),
          rule(
            'SesExporterRequestsFailing',
            'sum by (job, instance, aws_account_id, aws_region, operation) (increase(aws_ses_exporter_ses_requests_total{%(selector)s,outcome=~"client_error|server_error|timeout|transport_error"}[15m])) > 0',
            'SES requests of ses-identity-exporter {{ $labels.instance }} keep failing ({{ $labels.operation }} in {{ $labels.aws_account_id }}/{{ $labels.aws_region }})',
            '{{ $labels.operation }} requests of ses-identity-exporter at {{ $labels.instance }} to account {{ $labels.aws_account_id }} in {{ $labels.aws_region }} have failed in every 15-minute window for 30 minutes (AccessDenied, missing credentials or role, 5xx, timeouts or network errors). The exporter log names the error.',
          ),
          rule(
            'SesExporterDuplicateTarget',
            'max by (job, instance) (aws_ses_exporter_duplicate_targets{%(selector)s}) > 0',
            'ses-identity-exporter {{ $labels.instance }} skips targets that repeat an account and region',
            '{{ $value }} target(s) of ses-identity-exporter at {{ $labels.instance }} resolve (through STS) to an account and region another target already polls, and are not polled. Two roles lead into the same account: remove one of the targets.',
          ),
          rule(
            'SesExporterWebConfigReloadFailed',
            'max_over_time(aws_ses_exporter_web_config_last_reload_successful{%(selector)s}[5m]) == 0',
            'ses-identity-exporter {{ $labels.instance }} cannot reload its web config',
            'The last load of --web.config.file by ses-identity-exporter at {{ $labels.instance }} failed: it keeps serving with the previous TLS and authentication settings, so a rotated certificate or a changed password is not in force. The exporter log names the key at fault.',
          ),
          // No exporter at all under the selector: not scraped, every replica gone,
          // or the job renamed (a Helm release name, a kustomize namePrefix) so that
          // every other rule here silently matches nothing. absent() carries the
          // selector's equality matchers as labels (job).
          rule(
            'SesExporterAbsent',
            'absent(aws_ses_exporter_build_info{%(selector)s})',
            'No ses-identity-exporter matches the alert rules\' selector: no SES alert can fire',
            'Prometheus has no series of ses-identity-exporter matching the selector the alert rules use. Either no exporter runs or is scraped, or the scrape job is named differently from what the rules select (set the mixin\'s _config.selector): every other SES alert is silent meanwhile.',
          ),
        ],
      },
    ],
  },
}
