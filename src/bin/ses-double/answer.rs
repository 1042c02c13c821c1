//! Which answer an SES, SESv2 or STS request gets, in this order: the checks every
//! request passes (signed; a Query API request also a POST with the service's
//! `Version`), the rate limit per (account, region, operation), the faults in force,
//! then the operation's own answer from [`ses`], [`v2`] or [`sts`](crate::sts), which
//! the `reset` fault may cut short. Refusals are in the request's protocol.

use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};

use crate::server::Call;
use crate::ses;
use crate::state::{Double, Scope};
use crate::sts::{assume_role, caller_identity};
use crate::v2;
use crate::wire::{throttling, MaybeBroken};

impl Double {
    /// Decides the answer to one SES, SESv2 or STS request: checks, rate limit,
    /// faults, then data.
    pub(crate) fn answer(
        &self,
        parts: &http::request::Parts,
        scope: &(String, String),
        call: &Call,
        arrived: Instant,
    ) -> (Response<MaybeBroken>, &'static str) {
        let mut st = self.lock();
        let faults = st.faults.clone();
        let protocol = call.protocol();
        let action = call.action();
        let signed = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 Credential="));
        // SESv2's method is part of its operation (`v2::Request::parse`).
        let query = matches!(call, Call::Query(_));
        if !signed || (query && parts.method != Method::POST) {
            return (
                protocol.error(
                    StatusCode::FORBIDDEN,
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                ),
                "client_error",
            );
        }
        let sts = query && matches!(action, "GetCallerIdentity" | "AssumeRole");
        if let Call::Query(q) = call {
            let version = if sts { "2011-06-15" } else { "2010-12-01" };
            if q.get("Version") != Some(version) {
                return (
                    protocol.error(
                        StatusCode::BAD_REQUEST,
                        "InvalidAction",
                        "missing or unknown Version",
                    ),
                    "client_error",
                );
            }
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
                return throttling(protocol);
            }
        }

        let applies = faults.apply_to(action, sts, scope);
        let count = {
            let c = st.counts.entry(action.to_owned()).or_default();
            *c += 1;
            *c
        };
        if applies {
            if let Some(forced) = faults.forced(action, count, &mut st.errors_sent, protocol) {
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
        let (mut resp, outcome) = match call {
            Call::Rest(req) => v2::answer(req, here, refused),
            Call::Query(_) if action == "GetCallerIdentity" => caller_identity(parts, scope),
            Call::Query(q) if action == "AssumeRole" => assume_role(&st.roles, |k| q.get(k)),
            Call::Query(q) => ses::answer(action, here, &q.identities, refused, |k| q.get(k)),
        };
        // `reset` cuts short only a correct answer; a refusal is sent whole.
        if outcome == "ok" && applies && faults.reset {
            resp.body_mut().break_off();
            return (resp, "reset");
        }
        (resp, outcome)
    }
}
