//! Fault injection: the [`Faults`] object `PUT /_double/faults` sets, which requests
//! it applies to, and the answers it forces before the operation's own (throttling,
//! HTTP errors, `AccessDenied`, `ExpiredToken`, a malformed body), each in the
//! request's protocol (SES's XML or SESv2's REST-JSON error). The faults that
//! act on the operation's answer or on its timing are applied where they act:
//! `invalid_identities` in [`ses`](crate::ses) and [`v2`](crate::v2), `reset` in
//! [`answer`](crate::answer),
//! `delay_ms` and `first_request_delay_ms` in [`server`](crate::server).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::wire::{throttling, MaybeBroken, Protocol};

/// Faults to inject. Each applies to the operations in `actions` (every SES and
/// SESv2 operation when empty; STS operations only when named).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Faults {
    pub(crate) actions: Vec<String>,
    /// Answer every Nth request `Throttling` (SESv2: `TooManyRequestsException`),
    /// counted per operation.
    pub(crate) throttle_every: u64,
    /// Answer every request `Throttling` (SESv2: `TooManyRequestsException`).
    pub(crate) throttle_all: bool,
    /// Answer with this HTTP status (e.g. 500, 503) and an `InternalFailure`/
    /// `ServiceUnavailable` error...
    pub(crate) error_status: u16,
    /// ...for the next this many requests (0: every request while set).
    pub(crate) error_count: u64,
    /// Answer `AccessDenied` (SESv2: `AccessDeniedException`), 403.
    pub(crate) access_denied: bool,
    /// Answer `ExpiredToken` (SESv2: `ExpiredTokenException`), 403: the request was
    /// signed with expired credentials.
    pub(crate) expired_token: bool,
    /// Answer HTTP 200 with a body that is not the expected XML (or JSON).
    pub(crate) malformed: bool,
    /// Send half of a correct response, then drop the connection.
    pub(crate) reset: bool,
    /// Wait this long before answering.
    pub(crate) delay_ms: u64,
    /// A batch holding any of these identities is refused with `InvalidParameterValue`
    /// (SESv2's `GetEmailIdentity` of one: `BadRequestException`).
    pub(crate) invalid_identities: Vec<String>,
    /// Only requests to these regions (all when empty).
    pub(crate) regions: Vec<String>,
    /// Only requests of these accounts (all when empty).
    pub(crate) accounts: Vec<String>,
    /// Hold the first request of every new connection this long before it counts as
    /// arrived (recorded, rate-limited, answered): a slow first packet or handshake,
    /// as a client's first call after start-up sees. Later requests on the same
    /// connection arrive at once. Applies to every request, whatever `actions` says.
    pub(crate) first_request_delay_ms: u64,
}

impl Faults {
    /// Whether these faults apply to a request of `action` (an STS operation when
    /// `sts`) in `scope` (account, region): by `actions`, `regions` and `accounts`.
    pub(crate) fn apply_to(&self, action: &str, sts: bool, scope: &(String, String)) -> bool {
        ((self.actions.is_empty() && !sts) || self.actions.iter().any(|a| a == action))
            && (self.regions.is_empty() || self.regions.contains(&scope.1))
            && (self.accounts.is_empty() || self.accounts.contains(&scope.0))
    }

    /// The answer these faults force on a request they apply to, if any, before its
    /// operation is looked at. `count` is the request's number for its operation (for
    /// `throttle_every`); `errors_sent` counts the injected HTTP errors (for
    /// `error_count`) and goes up by one with each. The answer is in `protocol`.
    pub(crate) fn forced(
        &self,
        action: &str,
        count: u64,
        errors_sent: &mut u64,
        protocol: Protocol,
    ) -> Option<(Response<MaybeBroken>, &'static str)> {
        if self.throttle_all
            || (self.throttle_every > 0 && count.is_multiple_of(self.throttle_every))
        {
            return Some(throttling(protocol));
        }
        if self.error_status >= 400 && (self.error_count == 0 || *errors_sent < self.error_count) {
            *errors_sent += 1;
            let status = StatusCode::from_u16(self.error_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = if status == StatusCode::SERVICE_UNAVAILABLE {
                "ServiceUnavailable"
            } else {
                "InternalFailure"
            };
            return Some((
                protocol.error(status, code, "injected failure"),
                "server_error",
            ));
        }
        if self.access_denied {
            return Some((
                protocol.error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    &format!("User is not authorized to perform: ses:{action}"),
                ),
                "client_error",
            ));
        }
        if self.expired_token {
            return Some((
                protocol.error(
                    StatusCode::FORBIDDEN,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ),
                "client_error",
            ));
        }
        if self.malformed {
            return Some((protocol.malformed(), "malformed"));
        }
        None
    }
}
