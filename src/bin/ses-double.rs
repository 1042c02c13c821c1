//! `ses-double`: a stand-in for Amazon SES's Query API on loopback, for the tests,
//! the demo and the benchmarks. It answers `GetIdentityMailFromDomainAttributes` and
//! `ListIdentities` in SES's wire format, with what moto cannot do: every MAIL FROM
//! status, paging, the 100-identity limit, its own per-operation rate limit
//! (answering `Throttling`), and injected faults. It records the arrival time of every
//! request so a test can check the exporter's rate contract where it matters, at the
//! server. With `--upstream` it is a recording proxy in front of another server
//! (moto), to count the requests that reach it.
//!
//! Control API (plain JSON over HTTP, under `/_double/`):
//! - `GET /_double/requests`: every SES request so far, `[{"t", "action",
//!   "identities", "status", "outcome"}]`, `t` in Unix seconds; `DELETE` clears it.
//! - `PUT /_double/faults`: a [`Faults`] object, replacing the current one.
//! - `PUT /_double/identities/NAME` with `{"mail_from_domain", "status", "behavior"}`
//!   (each optional) creates or replaces an identity; `DELETE` removes it.

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
}

/// Faults to inject. Each applies to the operations in `actions` (all when empty).
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
}

#[derive(Debug, Clone, Serialize)]
struct Record {
    /// Arrival, Unix seconds.
    t: f64,
    action: String,
    identities: usize,
    status: u16,
    outcome: &'static str,
}

#[derive(Default)]
struct State {
    identities: BTreeMap<String, Identity>,
    faults: Faults,
    records: Vec<Record>,
    /// Arrivals per action in the last seconds, for the rate limit.
    recent: HashMap<String, VecDeque<Instant>>,
    counts: HashMap<String, u64>,
    errors_sent: u64,
}

struct Double {
    state: Mutex<State>,
    rate: f64,
    upstream: Option<SocketAddr>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut state = State::default();
    if let Seed::Demo = args.seed {
        seed_demo(&mut state.identities);
    }
    for i in 0..args.seed_count {
        let name = format!("id-{i:05}.bench.example");
        state.identities.insert(
            name.clone(),
            Identity {
                mail_from_domain: Some(format!("mail.{name}")),
                status: Some("Success".into()),
                behavior: Some("RejectMessage".into()),
            },
        );
    }
    let double = Arc::new(Double {
        state: Mutex::new(state),
        rate: args.rate,
        upstream: args.upstream,
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
            let service = service_fn(move |req| {
                let double = Arc::clone(&double);
                async move { Ok::<_, Infallible>(double.handle(req).await) }
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
        },
    );
    ids.insert(
        "ops@example.com".into(),
        Identity {
            mail_from_domain: None,
            status: None,
            behavior: Some("UseDefaultValue".into()),
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

        if let Some(upstream) = self.upstream {
            let (status, resp) = forward(upstream, parts, body).await;
            self.lock().records.push(Record {
                t: arrived,
                action,
                identities: identities.len(),
                status,
                outcome: "proxied",
            });
            return resp;
        }

        let (resp, outcome) = self.answer(&parts, &action, &identities, get, arrived_at);
        let delay = Duration::from_millis(self.lock().faults.delay_ms);
        let status = resp.status().as_u16();
        self.lock().records.push(Record {
            t: arrived,
            action,
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
    fn answer<'a>(
        &self,
        parts: &http::request::Parts,
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
        if get("Version") != Some("2010-12-01") {
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

        // The rate limit: every arrival counts, like a strict server.
        if self.rate > 0.0 {
            let window = Duration::from_secs_f64((1.0 / self.rate).max(1.0));
            let capacity = ((self.rate * window.as_secs_f64()).round() as usize).max(1);
            let recent = st.recent.entry(action.to_owned()).or_default();
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

        let applies = faults.actions.is_empty() || faults.actions.iter().any(|a| a == action);
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

        let mut resp = match action {
            "GetIdentityMailFromDomainAttributes" => {
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
                    mail_from_xml(&st.identities, identities),
                )
            }
            "ListIdentities" => match list_xml(
                &st.identities,
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
            (Method::GET, "/_double/identities") => json(&self.lock().identities.clone()),
            (method, p) if p.starts_with("/_double/identities/") => {
                let raw = &p["/_double/identities/".len()..];
                let name: String = percent_decode(raw);
                match method {
                    Method::PUT => match serde_json::from_slice::<Identity>(&body) {
                        Ok(id) => {
                            self.lock().identities.insert(name, id);
                            respond(StatusCode::NO_CONTENT, "text/plain", "")
                        }
                        Err(e) => respond(
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            format!("bad identity: {e}\n"),
                        ),
                    },
                    Method::DELETE => {
                        self.lock().identities.remove(&name);
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

fn mail_from_xml(store: &BTreeMap<String, Identity>, asked: &[String]) -> String {
    let mut entries = String::new();
    for name in asked {
        // Like SES and moto: identities it does not know are left out of the map.
        let Some(id) = store.get(name) else { continue };
        entries.push_str("<entry><key>");
        entries.push_str(&xml_escape(name));
        entries.push_str("</key><value>");
        if let Some(domain) = &id.mail_from_domain {
            entries.push_str(&format!(
                "<MailFromDomain>{}</MailFromDomain>",
                xml_escape(domain)
            ));
            if let Some(status) = &id.status {
                entries.push_str(&format!(
                    "<MailFromDomainStatus>{}</MailFromDomainStatus>",
                    xml_escape(status)
                ));
            }
        }
        if let Some(b) = &id.behavior {
            entries.push_str(&format!(
                "<BehaviorOnMXFailure>{}</BehaviorOnMXFailure>",
                xml_escape(b)
            ));
        }
        entries.push_str("</value></entry>");
    }
    let map = if entries.is_empty() {
        "<MailFromDomainAttributes/>".to_owned()
    } else {
        format!("<MailFromDomainAttributes>{entries}</MailFromDomainAttributes>")
    };
    format!(
        "<GetIdentityMailFromDomainAttributesResponse xmlns=\"{XMLNS}\"><GetIdentityMailFromDomainAttributesResult>{map}\
         </GetIdentityMailFromDomainAttributesResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
         </GetIdentityMailFromDomainAttributesResponse>",
        request_id()
    )
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
