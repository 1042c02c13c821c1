//! Which answer an SES or STS request gets, in this order: the checks every request
//! passes (a signed POST, the service's `Version`), the rate limit per (account,
//! region, operation), the faults in force, then the operation's own answer from
//! [`ses`] or [`sts`](crate::sts), which the `reset` fault may cut short.

use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};

use crate::ses;
use crate::state::{Double, Scope};
use crate::sts::{assume_role, caller_identity};
use crate::wire::{error_xml, throttling, MaybeBroken};

impl Double {
    /// Decides the answer to one SES request: checks, rate limit, faults, then data.
    pub(crate) fn answer<'a>(
        &self,
        parts: &http::request::Parts,
        scope: &(String, String),
        action: &str,
        identities: &[String],
        get: impl Fn(&str) -> Option<&'a str>,
        arrived: Instant,
    ) -> (Response<MaybeBroken>, &'static str) {
        let mut st = self.lock();
        let faults = st.faults.clone();
        let signed = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 Credential="));
        if parts.method != Method::POST || !signed {
            return (
                error_xml(
                    StatusCode::FORBIDDEN,
                    "Sender",
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                ),
                "client_error",
            );
        }
        let sts = matches!(action, "GetCallerIdentity" | "AssumeRole");
        let version = if sts { "2011-06-15" } else { "2010-12-01" };
        if get("Version") != Some(version) {
            return (
                error_xml(
                    StatusCode::BAD_REQUEST,
                    "Sender",
                    "InvalidAction",
                    "missing or unknown Version",
                ),
                "client_error",
            );
        }

        // The rate limit: every arrival counts, like a strict server; per account,
        // region and operation, like SES.
        if self.rate > 0.0 && !sts {
            let window = Duration::from_secs_f64((1.0 / self.rate).max(1.0));
            let capacity = ((self.rate * window.as_secs_f64()).round() as usize).max(1);
            let recent = st
                .recent
                .entry((scope.0.clone(), scope.1.clone(), action.to_owned()))
                .or_default();
            while recent
                .front()
                .is_some_and(|t| arrived.duration_since(*t) >= window)
            {
                recent.pop_front();
            }
            let over = recent.len() >= capacity;
            recent.push_back(arrived);
            if over {
                return throttling();
            }
        }

        let applies = faults.apply_to(action, sts, scope);
        let count = {
            let c = st.counts.entry(action.to_owned()).or_default();
            *c += 1;
            *c
        };
        if applies {
            if let Some(forced) = faults.forced(action, count, &mut st.errors_sent) {
                return forced;
            }
        }

        let empty = Scope::default();
        let here = st.scopes.get(scope).unwrap_or(&empty);
        // The `invalid_identities` fault, only where the faults apply.
        let refused: &[String] = if applies {
            &faults.invalid_identities
        } else {
            &[]
        };
        let (mut resp, outcome) = match action {
            "GetCallerIdentity" => caller_identity(parts, scope),
            "AssumeRole" => assume_role(&st.roles, get),
            _ => ses::answer(action, here, identities, refused, get),
        };
        // `reset` cuts short only a correct answer; a refusal is sent whole.
        if outcome == "ok" && applies && faults.reset {
            resp.body_mut().break_off();
            return (resp, "reset");
        }
        (resp, outcome)
    }
}
