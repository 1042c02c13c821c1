//! `ses-double`: a stand-in for Amazon SES's Query API on loopback, for the tests,
//! the demo and the benchmarks. It answers `GetIdentityMailFromDomainAttributes`,
//! `GetIdentityDkimAttributes`, `GetIdentityVerificationAttributes`, `GetSendQuota`,
//! `GetAccountSendingEnabled` and `ListIdentities` in SES's wire format, and STS's
//! `GetCallerIdentity` and `AssumeRole`, with what moto cannot do: every status,
//! paging, the 100-identity limit, its own rate limit per (account, region,
//! operation) (answering `Throttling`), sending disabled, and injected faults.
//! Accounts and regions are separate: the region comes from the request's SigV4
//! scope, the account from the access key (`AssumeRole` hands out keys that name
//! the role's account; any other key is `--account`). It records the arrival time of every
//! request so a test can check the exporter's rate contract where it matters, at the
//! server. With `--upstream` it is a recording proxy in front of another server
//! (moto), to count the requests that reach it.
//!
//! Control API (plain JSON over HTTP, under `/_double/`):
//! - `GET /_double/requests`: every SES request so far, `[{"t", "action",
//!   "identities", "status", "outcome"}]`, `t` in Unix seconds; `DELETE` clears it.
//! - `PUT /_double/faults`: a [`Faults`] object, replacing the current one.
//! - `PUT /_double/identities/NAME` with `{"mail_from_domain", "status", "behavior",
//!   "dkim_enabled", "dkim_status", "verification_status", "omit"}` (each optional;
//!   `omit` lists wire fields to leave out of the answers) creates or replaces an
//!   identity; `DELETE` removes it.
//! - `PUT /_double/account` with `{"sending_enabled", "max_24_hour_send",
//!   "max_send_rate", "sent_last_24_hours", "omit"}` sets the account-level answers.
//! - `PUT /_double/roles/ARN` with `{"external_id"}`: `AssumeRole` of that role then
//!   requires that external ID (roles not listed are assumable by anyone).
//!
//! Identity and account paths take `?account=ID&region=NAME` (default: `--account`
//! and `--region`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

const XMLNS: &str = "http://ses.amazonaws.com/doc/2010-12-01/";
const MAX_IDENTITIES: usize = 100;
const MAX_LIST_ITEMS: usize = 1000;

#[derive(Debug, Parser)]
#[command(
    name = "ses-double",
    about = "SES Query API test double (loopback only)"
)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the first line on stdout
    /// is `listening on http://ADDR` once the port accepts connections.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Identities to start with: `demo` (every status x behavior, with and without a
    /// custom MAIL FROM) or `none`.
    #[arg(long, default_value = "demo")]
    seed: Seed,
    /// Also create this many generated domains (`id-00000.bench.example` ...), with a
    /// custom MAIL FROM in Success, for load tests.
    #[arg(long, default_value_t = 0)]
    seed_count: usize,
    /// Requests per second per operation before answering `Throttling`, like SES's
    /// default sending-API limit. 0 turns the limit off.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Forward SES requests to this server (e.g. moto) and only record them.
    #[arg(long)]
    upstream: Option<SocketAddr>,
    /// The account of requests signed with keys `AssumeRole` did not hand out.
    #[arg(long, default_value = "123456789012")]
    account: String,
    /// The region the seeded identities and unscoped control requests belong to.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Seed {
    Demo,
    None,
}

/// One identity as the double stores it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    mail_from_domain: Option<String>,
    /// `MailFromDomainStatus` as sent; any string, so tests can send values the
    /// exporter does not know.
    status: Option<String>,
    behavior: Option<String>,
    /// `DkimEnabled`; false when not set.
    dkim_enabled: Option<bool>,
    /// `DkimVerificationStatus`; `NotStarted` when not set.
    dkim_status: Option<String>,
    /// `VerificationStatus`; `Success` when not set.
    verification_status: Option<String>,
    /// Wire fields to leave out of the answers even when set (`MailFromDomain`,
    /// `MailFromDomainStatus`, `BehaviorOnMXFailure`, `DkimEnabled`,
    /// `DkimVerificationStatus`, `VerificationStatus`): SES's model marks them
    /// required, but a test must see what the exporter does when one is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    omit: Vec<String>,
}

impl Identity {
    fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }
}

/// Whether a wire field is sent, given the fields a test asked to leave out.
fn sends(omit: &[String], field: &str) -> bool {
    !omit.iter().any(|f| f == field)
}

/// Account-level answers of one account and region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Account {
    sending_enabled: bool,
    max_24_hour_send: f64,
    max_send_rate: f64,
    sent_last_24_hours: f64,
    /// Wire fields to leave out (`Max24HourSend`, `MaxSendRate`, `SentLast24Hours`,
    /// `Enabled`), as for [`Identity::omit`].
    omit: Vec<String>,
}

impl Account {
    fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }
}

impl Default for Account {
    fn default() -> Self {
        Account {
            sending_enabled: true,
            max_24_hour_send: 50_000.0,
            max_send_rate: 14.0,
            sent_last_24_hours: 0.0,
            omit: Vec::new(),
        }
    }
}

/// One account in one region.
#[derive(Debug, Clone, Default)]
struct Scope {
    identities: BTreeMap<String, Identity>,
    account: Account,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Role {
    external_id: Option<String>,
}

/// Faults to inject. Each applies to the operations in `actions` (every SES
/// operation when empty; STS operations only when named).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Faults {
    actions: Vec<String>,
    /// Answer every Nth request `Throttling` (counted per operation).
    throttle_every: u64,
    /// Answer every request `Throttling`.
    throttle_all: bool,
    /// Answer with this HTTP status (e.g. 500, 503) and an `InternalFailure`/
    /// `ServiceUnavailable` error...
    error_status: u16,
    /// ...for the next this many requests (0: every request while set).
    error_count: u64,
    /// Answer `AccessDenied` (403).
    access_denied: bool,
    /// Answer `ExpiredToken` (403): the request was signed with expired credentials.
    expired_token: bool,
    /// Answer HTTP 200 with a body that is not the expected XML.
    malformed: bool,
    /// Send half of a correct response, then drop the connection.
    reset: bool,
    /// Wait this long before answering.
    delay_ms: u64,
    /// A batch holding any of these identities is refused with `InvalidParameterValue`.
    invalid_identities: Vec<String>,
    /// Only requests to these regions (all when empty).
    regions: Vec<String>,
    /// Only requests of these accounts (all when empty).
    accounts: Vec<String>,
    /// Hold the first request of every new connection this long before it counts as
    /// arrived (recorded, rate-limited, answered): a slow first packet or handshake,
    /// as a client's first call after start-up sees. Later requests on the same
    /// connection arrive at once. Applies to every request, whatever `actions` says.
    first_request_delay_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Record {
    /// Arrival, Unix seconds.
    t: f64,
    action: String,
    account: String,
    region: String,
    identities: usize,
    status: u16,
    outcome: &'static str,
}

#[derive(Default)]
struct State {
    /// (account, region) → what SES knows there.
    scopes: BTreeMap<(String, String), Scope>,
    roles: BTreeMap<String, Role>,
    faults: Faults,
    records: Vec<Record>,
    /// Arrivals per (account, region, action) in the last seconds, for the rate limit.
    recent: HashMap<(String, String, String), VecDeque<Instant>>,
    counts: HashMap<String, u64>,
    errors_sent: u64,
}

struct Double {
    state: Mutex<State>,
    rate: f64,
    upstream: Option<SocketAddr>,
    account: String,
    region: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut state = State::default();
    let home = state
        .scopes
        .entry((args.account.clone(), args.region.clone()))
        .or_default();
    if let Seed::Demo = args.seed {
        seed_demo(&mut home.identities);
    }
    for i in 0..args.seed_count {
        let name = format!("id-{i:05}.bench.example");
        home.identities.insert(
            name.clone(),
            Identity {
                mail_from_domain: Some(format!("mail.{name}")),
                status: Some("Success".into()),
                behavior: Some("RejectMessage".into()),
                dkim_enabled: Some(true),
                dkim_status: Some("Success".into()),
                verification_status: Some("Success".into()),
                omit: Vec::new(),
            },
        );
    }
    let double = Arc::new(Double {
        state: Mutex::new(state),
        rate: args.rate,
        upstream: args.upstream,
        account: args.account,
        region: args.region,
    });
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("ses-double: cannot listen on {}: {err}", args.listen);
            std::process::exit(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    // The readiness signal tests wait for: the socket is already accepting.
    // One line at start-up, before any connection exists: nothing to block.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(err) => {
                eprintln!("ses-double: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let double = Arc::clone(&double);
        tokio::spawn(async move {
            let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let service = service_fn(move |req| {
                let double = Arc::clone(&double);
                let first = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                async move {
                    if first && !req.uri().path().starts_with("/_double/") {
                        let delay = double.lock().faults.first_request_delay_ms;
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                    }
                    Ok::<_, Infallible>(double.handle(req).await)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Every status x behavior with a custom MAIL FROM, plus identities without one.
fn seed_demo(ids: &mut BTreeMap<String, Identity>) {
    for status in ["Pending", "Success", "Failed", "TemporaryFailure"] {
        for (behavior, short) in [("UseDefaultValue", "default"), ("RejectMessage", "reject")] {
            let name = format!("{}-{short}.example.com", status.to_ascii_lowercase());
            ids.insert(
                name.clone(),
                Identity {
                    mail_from_domain: Some(format!("bounce.{name}")),
                    status: Some(status.into()),
                    behavior: Some(behavior.into()),
                    dkim_enabled: Some(true),
                    dkim_status: Some(status.into()),
                    verification_status: Some("Success".into()),
                    omit: Vec::new(),
                },
            );
        }
    }
    ids.insert(
        "no-mail-from.example.com".into(),
        Identity {
            mail_from_domain: None,
            status: None,
            behavior: Some("UseDefaultValue".into()),
            dkim_enabled: Some(false),
            dkim_status: Some("NotStarted".into()),
            verification_status: Some("Success".into()),
            omit: Vec::new(),
        },
    );
    ids.insert(
        "ops@example.com".into(),
        Identity {
            mail_from_domain: None,
            status: None,
            behavior: Some("UseDefaultValue".into()),
            dkim_enabled: None,
            dkim_status: None,
            verification_status: Some("Pending".into()),
            omit: Vec::new(),
        },
    );
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A response body that may break off: `reset` sends the first part, then fails,
/// which makes hyper drop the connection mid-response.
struct MaybeBroken {
    data: Option<Bytes>,
    fail_after: bool,
    len: u64,
}

impl Body for MaybeBroken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.fail_after {
            self.fail_after = false;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            ))));
        }
        Poll::Ready(None)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<MaybeBroken> {
    let body: Bytes = body.into();
    let len = body.len() as u64;
    let mut resp = Response::new(MaybeBroken {
        data: Some(body),
        fail_after: false,
        len,
    });
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// SES's answer above its rate limit.
fn throttling() -> (Response<MaybeBroken>, &'static str) {
    let resp = error_xml(
        StatusCode::BAD_REQUEST,
        "Sender",
        "Throttling",
        "Rate exceeded",
    );
    (resp, "throttled")
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn error_xml(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<MaybeBroken> {
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(message),
        request_id()
    );
    respond(status, "text/xml", body)
}

impl Double {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<MaybeBroken> {
        let arrived = now_unix();
        let arrived_at = Instant::now();
        if req.uri().path().starts_with("/_double/") {
            return self.control(req).await;
        }
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error_xml(
                    StatusCode::BAD_REQUEST,
                    "Sender",
                    "MalformedInput",
                    "unreadable body",
                )
            }
        };
        let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let action = get("Action").unwrap_or("").to_owned();
        let identities: Vec<String> = {
            let mut members: Vec<(usize, String)> = form
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("Identities.member.")
                        .and_then(|n| n.parse().ok())
                        .map(|n| (n, v.clone()))
                })
                .collect();
            members.sort();
            members.into_iter().map(|(_, v)| v).collect()
        };

        let (account, region) = self.scope_of(&parts);
        if let Some(upstream) = self.upstream {
            let (status, resp) = forward(upstream, parts, body).await;
            self.lock().records.push(Record {
                t: arrived,
                action,
                account,
                region,
                identities: identities.len(),
                status,
                outcome: "proxied",
            });
            return resp;
        }

        let scope = (account.clone(), region.clone());
        let (resp, outcome) = self.answer(&parts, &scope, &action, &identities, get, arrived_at);
        let delay = Duration::from_millis(self.lock().faults.delay_ms);
        let status = resp.status().as_u16();
        self.lock().records.push(Record {
            t: arrived,
            action,
            account,
            region,
            identities: identities.len(),
            status,
            outcome,
        });
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        resp
    }

    /// Decides the answer to one SES request: checks, rate limit, faults, then data.
    /// The (account, region) a request is for: the region from its SigV4 credential
    /// scope, the account from its access key.
    fn scope_of(&self, parts: &http::request::Parts) -> (String, String) {
        let mut fields = credential(parts).split('/');
        let key = fields.next().unwrap_or("");
        let region = fields.nth(1).unwrap_or(&self.region).to_owned();
        (
            account_of_key(key).unwrap_or(&self.account).to_owned(),
            region,
        )
    }

    fn answer<'a>(
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

        let applies = ((faults.actions.is_empty() && !sts)
            || faults.actions.iter().any(|a| a == action))
            && (faults.regions.is_empty() || faults.regions.contains(&scope.1))
            && (faults.accounts.is_empty() || faults.accounts.contains(&scope.0));
        let count = {
            let c = st.counts.entry(action.to_owned()).or_default();
            *c += 1;
            *c
        };
        if applies {
            if faults.throttle_all
                || (faults.throttle_every > 0 && count % faults.throttle_every == 0)
            {
                return throttling();
            }
            if faults.error_status >= 400
                && (faults.error_count == 0 || st.errors_sent < faults.error_count)
            {
                st.errors_sent += 1;
                let status = StatusCode::from_u16(faults.error_status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let code = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "ServiceUnavailable"
                } else {
                    "InternalFailure"
                };
                return (
                    error_xml(status, "Receiver", code, "injected failure"),
                    "server_error",
                );
            }
            if faults.access_denied {
                return (
                    error_xml(
                        StatusCode::FORBIDDEN,
                        "Sender",
                        "AccessDenied",
                        &format!("User is not authorized to perform: ses:{action}"),
                    ),
                    "client_error",
                );
            }
            if faults.expired_token {
                return (
                    error_xml(
                        StatusCode::FORBIDDEN,
                        "Sender",
                        "ExpiredToken",
                        "The security token included in the request is expired",
                    ),
                    "client_error",
                );
            }
            if faults.malformed {
                return (
                    respond(
                        StatusCode::OK,
                        "text/xml",
                        "<GetIdentityMailFromDomainAttributesResponse><Broken",
                    ),
                    "malformed",
                );
            }
        }

        let empty = Scope::default();
        let here = st.scopes.get(scope).unwrap_or(&empty);
        let mut resp = match action {
            "GetIdentityMailFromDomainAttributes"
            | "GetIdentityDkimAttributes"
            | "GetIdentityVerificationAttributes" => {
                if identities.len() > MAX_IDENTITIES {
                    return (
                        error_xml(
                            StatusCode::BAD_REQUEST,
                            "Sender",
                            "InvalidParameterValue",
                            &format!(
                            "Identities: at most {MAX_IDENTITIES} identities per request, got {}",
                            identities.len()
                        ),
                        ),
                        "client_error",
                    );
                }
                if applies {
                    if let Some(bad) = identities
                        .iter()
                        .find(|i| faults.invalid_identities.contains(i))
                    {
                        return (
                            error_xml(
                                StatusCode::BAD_REQUEST,
                                "Sender",
                                "InvalidParameterValue",
                                &format!("Invalid identity: {bad}"),
                            ),
                            "client_error",
                        );
                    }
                }
                respond(
                    StatusCode::OK,
                    "text/xml",
                    attributes_xml(action, &here.identities, identities),
                )
            }
            "GetSendQuota" => {
                let a = &here.account;
                let mut inner = String::new();
                for (field, value) in [
                    ("Max24HourSend", a.max_24_hour_send),
                    ("MaxSendRate", a.max_send_rate),
                    ("SentLast24Hours", a.sent_last_24_hours),
                ] {
                    if a.sends(field) {
                        inner.push_str(&format!("<{field}>{value:.1}</{field}>"));
                    }
                }
                respond(StatusCode::OK, "text/xml", wrap(action, &inner))
            }
            "GetAccountSendingEnabled" => {
                let a = &here.account;
                let inner = if a.sends("Enabled") {
                    format!("<Enabled>{}</Enabled>", a.sending_enabled)
                } else {
                    String::new()
                };
                respond(StatusCode::OK, "text/xml", wrap(action, &inner))
            }
            "GetCallerIdentity" => {
                let key = caller_key(parts);
                let arn = match account_of_key(&key) {
                    Some(account) => {
                        format!("arn:aws:sts::{account}:assumed-role/double-role/session")
                    }
                    None => format!("arn:aws:iam::{}:user/double-user", scope.0),
                };
                respond(
                    StatusCode::OK,
                    "text/xml",
                    sts_wrap(
                        action,
                        &format!(
                            "<Arn>{}</Arn><UserId>{key}</UserId><Account>{}</Account>",
                            xml_escape(&arn),
                            scope.0
                        ),
                    ),
                )
            }
            "AssumeRole" => {
                let arn = get("RoleArn").unwrap_or("");
                let session = get("RoleSessionName").unwrap_or("");
                let role_account = arn.split(':').nth(4).unwrap_or("");
                if role_account.len() != 12
                    || !role_account.bytes().all(|b| b.is_ascii_digit())
                    || session.is_empty()
                {
                    return (
                        error_xml(
                            StatusCode::BAD_REQUEST,
                            "Sender",
                            "ValidationError",
                            "invalid RoleArn or RoleSessionName",
                        ),
                        "client_error",
                    );
                }
                if let Some(role) = st.roles.get(arn) {
                    if role.external_id.as_deref() != get("ExternalId") {
                        return (
                            error_xml(
                                StatusCode::FORBIDDEN,
                                "Sender",
                                "AccessDenied",
                                &format!("User is not authorized to perform: sts:AssumeRole on resource: {arn}"),
                            ),
                            "client_error",
                        );
                    }
                }
                let expires = humantime::format_rfc3339_seconds(
                    SystemTime::now() + Duration::from_secs(3600),
                );
                let name = arn.rsplit('/').next().unwrap_or("role");
                respond(
                    StatusCode::OK,
                    "text/xml",
                    sts_wrap(
                        action,
                        &format!(
                            "<Credentials><AccessKeyId>ASIA{role_account}{:04}</AccessKeyId>\
                             <SecretAccessKey>double-secret</SecretAccessKey>\
                             <SessionToken>double-session-token</SessionToken>\
                             <Expiration>{expires}</Expiration></Credentials>\
                             <AssumedRoleUser><AssumedRoleId>AROADOUBLE:{}</AssumedRoleId>\
                             <Arn>arn:aws:sts::{role_account}:assumed-role/{}/{}</Arn></AssumedRoleUser>",
                            rand::random::<u16>() % 10_000,
                            xml_escape(session),
                            xml_escape(name),
                            xml_escape(session)
                        ),
                    ),
                )
            }
            "ListIdentities" => match list_xml(
                &here.identities,
                get("IdentityType"),
                get("MaxItems"),
                get("NextToken"),
            ) {
                Ok(body) => respond(StatusCode::OK, "text/xml", body),
                Err(msg) => {
                    return (
                        error_xml(
                            StatusCode::BAD_REQUEST,
                            "Sender",
                            "InvalidParameterValue",
                            &msg,
                        ),
                        "client_error",
                    );
                }
            },
            other => {
                return (
                    error_xml(
                        StatusCode::BAD_REQUEST,
                        "Sender",
                        "InvalidAction",
                        &format!("The action {other} is not valid for this web service"),
                    ),
                    "client_error",
                );
            }
        };
        if applies && faults.reset {
            let body = resp.body_mut();
            if let Some(data) = body.data.take() {
                body.data = Some(data.slice(..data.len() / 2));
                body.fail_after = true;
            }
            return (resp, "reset");
        }
        (resp, "ok")
    }

    async fn control(&self, req: Request<Incoming>) -> Response<MaybeBroken> {
        let path = req.uri().path().to_owned();
        // `?account=…&region=…` picks the account and region; default the home scope.
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let pick = |k: &str, default: &str| {
            query
                .iter()
                .find(|(key, _)| key == k)
                .map_or_else(|| default.to_owned(), |(_, v)| v.clone())
        };
        let scope = (pick("account", &self.account), pick("region", &self.region));
        let method = req.method().clone();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let json = |v: &dyn erased::Json| respond(StatusCode::OK, "application/json", v.to_json());
        match (method, path.as_str()) {
            (Method::GET, "/_double/requests") => json(&self.lock().records.clone()),
            (Method::DELETE, "/_double/requests") => {
                self.lock().records.clear();
                respond(StatusCode::NO_CONTENT, "text/plain", "")
            }
            (Method::GET, "/_double/faults") => json(&self.lock().faults.clone()),
            (Method::PUT, "/_double/faults") => match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    let mut st = self.lock();
                    st.faults = f;
                    st.errors_sent = 0;
                    respond(StatusCode::NO_CONTENT, "text/plain", "")
                }
                Err(e) => respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("bad faults: {e}\n"),
                ),
            },
            (Method::GET, "/_double/identities") => {
                let st = self.lock();
                json(
                    &st.scopes
                        .get(&scope)
                        .map(|s| s.identities.clone())
                        .unwrap_or_default(),
                )
            }
            (Method::PUT, "/_double/account") => match serde_json::from_slice::<Account>(&body) {
                Ok(a) => {
                    self.lock().scopes.entry(scope).or_default().account = a;
                    respond(StatusCode::NO_CONTENT, "text/plain", "")
                }
                Err(e) => respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("bad account: {e}\n"),
                ),
            },
            (Method::PUT, p) if p.starts_with("/_double/roles/") => {
                let arn = percent_decode(&p["/_double/roles/".len()..]);
                match serde_json::from_slice::<Role>(&body) {
                    Ok(role) => {
                        self.lock().roles.insert(arn, role);
                        respond(StatusCode::NO_CONTENT, "text/plain", "")
                    }
                    Err(e) => respond(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad role: {e}\n"),
                    ),
                }
            }
            (method, p) if p.starts_with("/_double/identities/") => {
                let raw = &p["/_double/identities/".len()..];
                let name: String = percent_decode(raw);
                match method {
                    Method::PUT => match serde_json::from_slice::<Identity>(&body) {
                        Ok(id) => {
                            self.lock()
                                .scopes
                                .entry(scope)
                                .or_default()
                                .identities
                                .insert(name, id);
                            respond(StatusCode::NO_CONTENT, "text/plain", "")
                        }
                        Err(e) => respond(
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            format!("bad identity: {e}\n"),
                        ),
                    },
                    Method::DELETE => {
                        if let Some(s) = self.lock().scopes.get_mut(&scope) {
                            s.identities.remove(&name);
                        }
                        respond(StatusCode::NO_CONTENT, "text/plain", "")
                    }
                    _ => respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
                }
            }
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "unknown control path\n",
            ),
        }
    }
}

/// Tiny indirection so `control` can serialise different types with one closure.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The SigV4 credential scope of a request: `KEY/DATE/REGION/SERVICE/aws4_request`.
fn credential(parts: &http::request::Parts) -> &str {
    parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split([',', ' ']).next())
        .unwrap_or("")
}

/// The access key a request was signed with.
fn caller_key(parts: &http::request::Parts) -> String {
    credential(parts).split('/').next().unwrap_or("").to_owned()
}

/// The account a key `AssumeRole` handed out belongs to (`ASIA` + 12 digits + 4).
fn account_of_key(key: &str) -> Option<&str> {
    let account = key.strip_prefix("ASIA")?.get(..12)?;
    account
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some(account)
}

/// An SES response: `<ActionResponse><ActionResult>inner</ActionResult>…`.
fn wrap(action: &str, inner: &str) -> String {
    wrap_in(XMLNS, action, inner)
}

/// An STS response, in STS's namespace.
fn sts_wrap(action: &str, inner: &str) -> String {
    wrap_in("https://sts.amazonaws.com/doc/2011-06-15/", action, inner)
}

fn wrap_in(namespace: &str, action: &str, inner: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{namespace}\"><{action}Result>{inner}</{action}Result>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        request_id()
    )
}

/// The per-identity map of the three attribute operations.
fn attributes_xml(action: &str, store: &BTreeMap<String, Identity>, asked: &[String]) -> String {
    let mut entries = String::new();
    for name in asked {
        // Like SES and moto: identities it does not know are left out of the map.
        let Some(id) = store.get(name) else { continue };
        entries.push_str("<entry><key>");
        entries.push_str(&xml_escape(name));
        entries.push_str("</key><value>");
        match action {
            "GetIdentityDkimAttributes" => {
                if id.sends("DkimEnabled") {
                    entries.push_str(&format!(
                        "<DkimEnabled>{}</DkimEnabled>",
                        id.dkim_enabled.unwrap_or(false)
                    ));
                }
                if id.sends("DkimVerificationStatus") {
                    entries.push_str(&format!(
                        "<DkimVerificationStatus>{}</DkimVerificationStatus>",
                        xml_escape(id.dkim_status.as_deref().unwrap_or("NotStarted"))
                    ));
                }
                entries.push_str(
                    "<DkimTokens><member>tok1</member><member>tok2</member><member>tok3</member></DkimTokens>",
                );
            }
            "GetIdentityVerificationAttributes" => {
                if id.sends("VerificationStatus") {
                    entries.push_str(&format!(
                        "<VerificationStatus>{}</VerificationStatus>",
                        xml_escape(id.verification_status.as_deref().unwrap_or("Success"))
                    ));
                }
                entries.push_str("<VerificationToken>token</VerificationToken>");
            }
            _ => {
                // As SES: a domain and its status when a custom MAIL FROM is set, the
                // behaviour always. Each can be left out on its own (`omit`).
                let fields = [
                    ("MailFromDomain", id.mail_from_domain.as_deref()),
                    ("MailFromDomainStatus", id.status.as_deref()),
                    ("BehaviorOnMXFailure", id.behavior.as_deref()),
                ];
                for (field, value) in fields {
                    if let Some(v) = value.filter(|_| id.sends(field)) {
                        entries.push_str(&format!("<{field}>{}</{field}>", xml_escape(v)));
                    }
                }
            }
        }
        entries.push_str("</value></entry>");
    }
    let tag = match action {
        "GetIdentityDkimAttributes" => "DkimAttributes",
        "GetIdentityVerificationAttributes" => "VerificationAttributes",
        _ => "MailFromDomainAttributes",
    };
    let map = if entries.is_empty() {
        format!("<{tag}/>")
    } else {
        format!("<{tag}>{entries}</{tag}>")
    };
    wrap(action, &map)
}

fn list_xml(
    store: &BTreeMap<String, Identity>,
    identity_type: Option<&str>,
    max_items: Option<&str>,
    next_token: Option<&str>,
) -> Result<String, String> {
    let want_email = match identity_type {
        None | Some("") => None,
        Some("EmailAddress") => Some(true),
        Some("Domain") => Some(false),
        Some(other) => return Err(format!("IdentityType: invalid value {other:?}")),
    };
    let max = match max_items {
        None => MAX_LIST_ITEMS,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST_ITEMS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "MaxItems: must be 1 to {MAX_LIST_ITEMS}, got {m:?}"
                ))
            }
        },
    };
    let start = match next_token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("NextToken: invalid token {t:?}"))?,
    };
    let matching: Vec<&String> = store
        .keys()
        .filter(|k| want_email.is_none_or(|e| k.contains('@') == e))
        .collect();
    let page: Vec<&&String> = matching.iter().skip(start).take(max).collect();
    let mut members = String::new();
    for name in &page {
        members.push_str(&format!("<member>{}</member>", xml_escape(name)));
    }
    let token = if start + page.len() < matching.len() {
        format!("<NextToken>page-{}</NextToken>", start + page.len())
    } else {
        String::new()
    };
    let list = if members.is_empty() {
        "<Identities/>".to_owned()
    } else {
        format!("<Identities>{members}</Identities>")
    };
    Ok(format!(
        "<ListIdentitiesResponse xmlns=\"{XMLNS}\"><ListIdentitiesResult>{list}{token}</ListIdentitiesResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></ListIdentitiesResponse>",
        request_id()
    ))
}

/// Proxy mode: sends the request on to `upstream` over a fresh connection and relays
/// the answer. Returns the status for the record (502 when upstream failed).
async fn forward(
    upstream: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
) -> (u16, Response<MaybeBroken>) {
    let fail = |msg: String| {
        (
            502,
            error_xml(StatusCode::BAD_GATEWAY, "Receiver", "ProxyError", &msg),
        )
    };
    let stream = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => return fail(format!("upstream {upstream}: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return fail(format!("upstream handshake: {e}")),
    };
    tokio::spawn(conn);
    let mut req = Request::from_parts(parts, Full::new(body));
    req.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&upstream.to_string())
            .unwrap_or(http::HeaderValue::from_static("localhost")),
    );
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return fail(format!("upstream request: {e}")),
    };
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return fail(format!("upstream body: {e}")),
    };
    let len = body.len() as u64;
    let mut out = Response::from_parts(
        parts,
        MaybeBroken {
            data: Some(body),
            fail_after: false,
            len,
        },
    );
    out.headers_mut().remove(http::header::TRANSFER_ENCODING);
    (out.status().as_u16(), out)
}
