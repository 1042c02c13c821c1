//! Every request, from its arrival to its response ([`Router`]): the web config's rate
//! limit, basic auth and headers, the routes (`/`, the telemetry path, `/-/healthy`,
//! `/-/ready`), content negotiation and gzip, and the scrape's body.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::auth::Verdict;
use super::body::Chunks;
use super::web_config::{WebConfig, WebState};
use crate::render::Piece;
use crate::serve::state::{Shared, TailLookup, TAIL_MAX_AGE};

/// The text exposition format version 0.0.4, which every Prometheus understands.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// What a 401 asks for (RFC 7617).
const AUTHENTICATE: &str = "Basic realm=\"ses-identity-exporter\", charset=\"UTF-8\"";

/// What every request needs: the shared state, the web config in force, the
/// telemetry path and the landing page made for it. The only part of the server that
/// reads [`Shared`]: the published exposition, the cached tail, readiness, and the
/// telemetry, whose connection counter the acceptor and the connections reach through
/// [`Router::count_connection_closed`].
pub(super) struct Router {
    shared: Arc<Shared>,
    pub(super) web: Arc<WebState>,
    telemetry_path: String,
    landing: Bytes,
}

impl Router {
    pub(super) fn new(shared: Arc<Shared>, web: Arc<WebState>, telemetry_path: &str) -> Router {
        Router {
            landing: Bytes::from(landing_page(telemetry_path)),
            shared,
            web,
            telemetry_path: telemetry_path.to_owned(),
        }
    }

    /// Counts a connection the server closed itself, by reason: the connection code
    /// reaches the shared state only through here.
    pub(super) fn count_connection_closed(&self, reason: &str) {
        self.shared.telemetry.count_connection_closed(reason);
    }

    /// Every response carries the web config's headers.
    pub(super) async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Chunks> {
        let web = self.web.current();
        let mut resp = self.guarded(req, &web, peer).await;
        let headers = resp.headers_mut();
        for (name, value) in &web.headers {
            headers.insert(name.clone(), value.clone());
        }
        resp
    }

    /// The rate limit and basic auth, for every path but the probes: /-/healthy and
    /// /-/ready reveal nothing, and a probe that needed credentials would restart a
    /// healthy pod the day the password changes.
    ///
    /// With basic auth, the rate limit counts authenticated requests apart from the
    /// others (exporter-toolkit spends one bucket on every request, so a client
    /// without credentials could get Prometheus's scrapes answered 429): refused
    /// requests spend a bucket of their own, of the same size.
    async fn guarded(
        &self,
        req: Request<Incoming>,
        web: &WebConfig,
        peer: IpAddr,
    ) -> Response<Chunks> {
        let path = req.uri().path();
        if path != "/-/healthy" && path != "/-/ready" {
            let bucket = match &web.users {
                None => web.rate_limit.as_ref(),
                Some(users) => match users
                    .check(req.headers().get(header::AUTHORIZATION), peer)
                    .await
                {
                    Verdict::Allowed => web.rate_limit.as_ref(),
                    Verdict::Denied => {
                        if web
                            .rate_limit_refused
                            .as_ref()
                            .is_some_and(|limit| !limit.allow())
                        {
                            return self.too_many();
                        }
                        let mut resp = plain(StatusCode::UNAUTHORIZED, "401 unauthorized\n");
                        resp.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static(AUTHENTICATE),
                        );
                        return resp;
                    }
                    Verdict::AddressBusy => {
                        self.shared
                            .telemetry
                            .count_request_refused("auth_address_busy");
                        return retry_later(
                            StatusCode::TOO_MANY_REQUESTS,
                            "429 too many password checks from this address\n",
                        );
                    }
                    Verdict::Busy => {
                        self.shared.telemetry.count_request_refused("auth_busy");
                        return retry_later(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "503 password checks are busy\n",
                        );
                    }
                },
            };
            if bucket.is_some_and(|limit| !limit.allow()) {
                return self.too_many();
            }
        }
        self.route(req).await
    }

    fn too_many(&self) -> Response<Chunks> {
        self.shared.telemetry.count_request_refused("rate_limit");
        plain(StatusCode::TOO_MANY_REQUESTS, "429 too many requests\n")
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Chunks> {
        let path = req.uri().path();
        let page = if path == self.telemetry_path {
            Page::Metrics
        } else {
            match path {
                "/" => Page::Landing,
                "/-/healthy" => Page::Healthy,
                "/-/ready" => Page::Ready,
                _ => return plain(StatusCode::NOT_FOUND, "404 page not found\n"),
            }
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        // For HEAD hyper sends the headers of this response, Content-Length
        // included, and leaves the body out.
        match page {
            Page::Metrics => self.metrics(accepts_gzip(&req)).await,
            Page::Landing => {
                let mut resp = Response::new(Chunks::new([self.landing.clone()]));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                resp
            }
            Page::Healthy => plain(StatusCode::OK, "Healthy\n"),
            Page::Ready if self.shared.is_ready() => plain(StatusCode::OK, "Ready\n"),
            Page::Ready => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready: not every target has finished a first poll cycle, or SES has answered none\n",
            ),
        }
    }

    /// The scrape: what the collectors published (every collector's part, the dns
    /// collector's included), then the exporter's own metrics; it never calls AWS.
    async fn metrics(&self, gzip: bool) -> Response<Chunks> {
        let cached = self.shared.exposition();
        let tail = match self.shared.tail(TAIL_MAX_AGE) {
            TailLookup::Fresh(tail) | TailLookup::Stale(tail, None) => tail,
            TailLookup::Stale(tail, Some(generation)) => {
                // Refreshed in the background; this scrape sends the one it has.
                let shared = Arc::clone(&self.shared);
                tokio::task::spawn_blocking(move || render_tail(&shared, generation));
                tail
            }
            TailLookup::Missing(generation) => {
                let shared = Arc::clone(&self.shared);
                // The process metrics read /proc: file I/O, so off the async threads.
                tokio::task::spawn_blocking(move || render_tail(&shared, generation))
                    .await
                    .unwrap_or_default()
            }
        };
        let tails: [&Piece; 1] = [&tail];
        let body = if gzip {
            Chunks::new(cached.gzip_with(&tails))
        } else {
            Chunks::new(cached.plain_with(&tails))
        };
        let mut resp = Response::new(body);
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        resp
    }
}

/// Renders the health and process metrics and caches them for `generation`.
fn render_tail(shared: &Shared, generation: u64) -> Arc<Piece> {
    // Fast compression: it is a few KB, rendered at most about once a second.
    let tail = Arc::new(Piece::new(
        &shared.telemetry.render(),
        flate2::Compression::fast(),
    ));
    shared.store_tail(generation, Arc::clone(&tail));
    tail
}

enum Page {
    Metrics,
    Landing,
    Healthy,
    Ready,
}

/// A refusal the client may retry in a second.
fn retry_later(status: StatusCode, text: &'static str) -> Response<Chunks> {
    let mut resp = plain(status, text);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<Chunks> {
    let mut resp = Response::new(Chunks::text(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Whether `Accept-Encoding` allows gzip: listed (or `*`) with a q-value above 0.
pub fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let wanted = coding.eq_ignore_ascii_case("gzip") || coding == "*";
            let q_zero = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            wanted && !q_zero
        })
}

fn landing_page(telemetry_path: &str) -> String {
    let path = telemetry_path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>SES Identity Exporter</title></head>
<body>
<h1>SES Identity Exporter</h1>
<p>Custom MAIL FROM state of Amazon SES identities, for Prometheus. Version {version} (revision {revision}).</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"#,
        version = crate::build::VERSION,
        revision = crate::build::REVISION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Request<()> {
        Request::builder()
            .header(header::ACCEPT_ENCODING, value)
            .body(())
            .unwrap()
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&with("gzip")));
        assert!(accepts_gzip(&with("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&Request::new(())));
    }
}
