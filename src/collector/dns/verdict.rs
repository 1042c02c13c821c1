//! The dns collector's verdicts, pure: whether a MAIL FROM domain's MX records name
//! the region's SES feedback host, and whether its SPF record includes SES.

/// The MX host SES wants for a MAIL FROM domain in `region`.
pub fn expected_mx(region: &str) -> String {
    format!("feedback-smtp.{region}.amazonses.com")
}

/// Whether one of the MX exchanges is the region's SES feedback host (names compare
/// case-insensitively, with or without the trailing dot).
pub fn mx_correct(exchanges: &[String], region: &str) -> bool {
    let want = expected_mx(region);
    exchanges
        .iter()
        .any(|e| e.trim_end_matches('.').eq_ignore_ascii_case(&want))
}

/// Whether the TXT records hold exactly one SPF record (two are an error, RFC 7208
/// 4.5) and it has the term `include:amazonses.com` with a pass qualifier.
pub fn spf_correct(txts: &[String]) -> bool {
    let spf: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let mut terms = t.split_ascii_whitespace();
            terms
                .next()
                .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        })
        .collect();
    let [record] = spf.as_slice() else {
        return false;
    };
    record.split_ascii_whitespace().skip(1).any(|term| {
        let term = term.strip_prefix('+').unwrap_or(term);
        term.eq_ignore_ascii_case("include:amazonses.com")
    })
}


#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Owned strings, as the resolver returns them.
    pub(in crate::collector::dns) fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn mx_must_name_the_regions_feedback_host() {
        assert!(mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(mx_correct(
            &s(&["mx.example.com", "FEEDBACK-SMTP.us-east-1.amazonses.com."]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.eu-west-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com.evil.example"]),
            "us-east-1"
        ));
        assert!(!mx_correct(&[], "us-east-1"));
    }

    #[test]
    fn spf_needs_one_record_including_amazonses_with_pass() {
        assert!(spf_correct(&s(&["v=spf1 include:amazonses.com ~all"])));
        assert!(spf_correct(&s(&[
            "google-site-verification=x",
            "V=SPF1 +include:AmazonSES.com -all"
        ])));
        assert!(!spf_correct(&s(&["v=spf1 include:_spf.google.com ~all"])));
        assert!(!spf_correct(&s(&["v=spf1 -include:amazonses.com ~all"])));
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com.evil ~all"
        ])));
        assert!(!spf_correct(&s(&["v=spf10 include:amazonses.com"])));
        // Two SPF records are a permanent error: SPF fails for everyone.
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com ~all",
            "v=spf1 -all"
        ])));
        assert!(!spf_correct(&[]));
    }
}
