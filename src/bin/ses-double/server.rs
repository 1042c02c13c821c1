//! The double's HTTP side: it takes connections (holding the first request of each
//! for `first_request_delay_ms`), hands `/_double/` paths to the control API, reads
//! an SES or STS request (its form and identities) or an SESv2 request (`/v2/...`:
//! its operation and parameters) and its scope (the account and region it is for),
//! has it proxied or answered, records it, and waits `delay_ms` before the answer
//! goes out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::proxy::forward;
use crate::state::{Double, Record};
use crate::sts::account_of_key;
use crate::v2;
use crate::wire::{MaybeBroken, Protocol};

/// One request to answer, as read from the wire.
pub(crate) enum Call {
    /// SES v1 or STS, in the Query API.
    Query(Query),
    /// SESv2, in REST-JSON.
    Rest(v2::Request),
}

impl Call {
    /// The operation's name: the records', the rate limit's and the faults' key.
    pub(crate) fn action(&self) -> &str {
        match self {
            Call::Query(q) => &q.action,
            Call::Rest(r) => r.action(),
        }
    }

    /// How many identities the request names.
    pub(crate) fn identities(&self) -> usize {
        match self {
            Call::Query(q) => q.identities.len(),
            Call::Rest(r) => r.identities(),
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        match self {
            Call::Query(_) => Protocol::Query,
            Call::Rest(_) => Protocol::RestJson,
        }
    }
}

/// A Query API request: its form, its `Action` and its `Identities.member.N`.
pub(crate) struct Query {
    form: Vec<(String, String)>,
    pub(crate) action: String,
    pub(crate) identities: Vec<String>,
}

impl Query {
    fn parse(body: &[u8]) -> Query {
        let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let mut members: Vec<(usize, String)> = form
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("Identities.member.")
                    .and_then(|n| n.parse().ok())
                    .map(|n| (n, v.clone()))
            })
            .collect();
        members.sort();
        let mut query = Query {
            form,
            action: String::new(),
            identities: members.into_iter().map(|(_, v)| v).collect(),
        };
        query.action = query.get("Action").unwrap_or("").to_owned();
        query
    }

    /// The form's value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves the connections `listener` accepts, each on its own task, for as long as
/// the process runs.
pub(crate) async fn serve(listener: TcpListener, double: Arc<Double>) {
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

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Double {
    async fn handle(&self, req: Request<Incoming>) -> Response<MaybeBroken> {
        let arrived = now_unix();
        let arrived_at = Instant::now();
        if req.uri().path().starts_with("/_double/") {
            return self.control(req).await;
        }
        let (parts, body) = req.into_parts();
        let protocol = Protocol::of(parts.uri.path());
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return protocol.error(StatusCode::BAD_REQUEST, "MalformedInput", "unreadable body")
            }
        };
        let call = match protocol {
            Protocol::Query => Call::Query(Query::parse(&body)),
            Protocol::RestJson => Call::Rest(v2::Request::parse(&parts.method, &parts.uri, &body)),
        };
        let action = call.action().to_owned();
        let identities = call.identities();

        let scope = self.scope_of(&parts);
        if let Some(upstream) = self.upstream {
            let (status, resp) = forward(upstream, parts, body).await;
            self.record(arrived, action, scope, identities, status, "proxied");
            return resp;
        }

        let (resp, outcome) = self.answer(&parts, &scope, &call, arrived_at);
        let delay = Duration::from_millis(self.lock().faults.delay_ms);
        let status = resp.status().as_u16();
        self.record(arrived, action, scope, identities, status, outcome);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        resp
    }

    /// Adds one SES, SESv2 or STS request to the records `GET /_double/requests` answers:
    /// arrived at `t` (Unix seconds), in the scope (account, region) it was for.
    fn record(
        &self,
        t: f64,
        action: String,
        (account, region): (String, String),
        identities: usize,
        status: u16,
        outcome: &'static str,
    ) {
        self.lock().records.push(Record {
            t,
            action,
            account,
            region,
            identities,
            status,
            outcome,
        });
    }

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
}

/// The SigV4 credential scope of a request: `KEY/DATE/REGION/SERVICE/aws4_request`.
pub(crate) fn credential(parts: &http::request::Parts) -> &str {
    parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split([',', ' ']).next())
        .unwrap_or("")
}
