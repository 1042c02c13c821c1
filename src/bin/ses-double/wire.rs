//! How the double's answers go on the wire: the response body that can break off
//! (for the `reset` fault), plain responses, the two protocols' errors (the Query
//! API's XML envelope and error document, in SES's namespace, which the double also
//! uses for STS's errors; SESv2's REST-JSON error), JSON answers, throttling,
//! request IDs, XML escaping and the percent-decoding of path segments.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

pub(crate) const XMLNS: &str = "http://ses.amazonaws.com/doc/2010-12-01/";

/// A response body that may break off: `reset` sends the first part, then fails,
/// which makes hyper drop the connection mid-response.
pub(crate) struct MaybeBroken {
    data: Option<Bytes>,
    fail_after: bool,
    len: u64,
}

impl MaybeBroken {
    /// A body sent whole.
    pub(crate) fn full(data: Bytes) -> Self {
        let len = data.len() as u64;
        MaybeBroken {
            data: Some(data),
            fail_after: false,
            len,
        }
    }

    /// The `reset` fault: keeps the first half of the body, then fails. The size
    /// announced stays the whole body's.
    pub(crate) fn break_off(&mut self) {
        if let Some(data) = self.data.take() {
            self.data = Some(data.slice(..data.len() / 2));
            self.fail_after = true;
        }
    }
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

pub(crate) fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<MaybeBroken> {
    let body: Bytes = body.into();
    let mut resp = Response::new(MaybeBroken::full(body));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The protocol a request came in, which decides how its answer and its errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// SES v1 and STS: the Query API, answers in XML.
    Query,
    /// SESv2 (`/v2/...` paths): REST-JSON.
    RestJson,
}

impl Protocol {
    /// The protocol of a request to `path`.
    pub(crate) fn of(path: &str) -> Protocol {
        if path.starts_with("/v2/") {
            Protocol::RestJson
        } else {
            Protocol::Query
        }
    }

    /// An error the two protocols share, named by its Query API code
    /// (`Throttling`, `AccessDenied`, `ExpiredToken`, `MissingAuthenticationToken`,
    /// `InvalidParameterValue`, `MalformedInput`, `InternalFailure`, ...). A REST-JSON
    /// answer carries SESv2's name and status for it where they differ (`Throttling`
    /// is 429 `TooManyRequestsException`, a bad parameter 400 `BadRequestException`).
    pub(crate) fn error(
        self,
        status: StatusCode,
        code: &str,
        message: &str,
    ) -> Response<MaybeBroken> {
        match self {
            Protocol::Query => {
                let kind = if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                error_xml(status, kind, code, message)
            }
            Protocol::RestJson => {
                let (status, code) = match code {
                    "Throttling" => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException"),
                    "AccessDenied" => (StatusCode::FORBIDDEN, "AccessDeniedException"),
                    "ExpiredToken" => (StatusCode::FORBIDDEN, "ExpiredTokenException"),
                    "MissingAuthenticationToken" => {
                        (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
                    }
                    "InvalidParameterValue" | "MalformedInput" => {
                        (StatusCode::BAD_REQUEST, "BadRequestException")
                    }
                    other => (status, other),
                };
                error_json(status, code, message)
            }
        }
    }

    /// The `malformed` fault: HTTP 200 with a body that is not the expected document.
    pub(crate) fn malformed(self) -> Response<MaybeBroken> {
        match self {
            Protocol::Query => respond(
                StatusCode::OK,
                "text/xml",
                "<GetIdentityMailFromDomainAttributesResponse><Broken",
            ),
            Protocol::RestJson => respond(
                StatusCode::OK,
                "application/json",
                "{\"EnforcementStatus\": ",
            ),
        }
    }
}

/// The answer above the rate limit: SES's `Throttling` (HTTP 400) or SESv2's
/// `TooManyRequestsException` (HTTP 429).
pub(crate) fn throttling(protocol: Protocol) -> (Response<MaybeBroken>, &'static str) {
    let resp = protocol.error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded");
    (resp, "throttled")
}

/// A REST-JSON answer: `body` as JSON, with the request ID header SDKs read.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<MaybeBroken> {
    let mut resp = respond(status, "application/json", body.to_string());
    if let Ok(v) = http::HeaderValue::from_str(&request_id()) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// A REST-JSON error: the code in `x-amzn-ErrorType` (where SDKs look first) and
/// `{"message": ...}` as the body.
pub(crate) fn error_json(status: StatusCode, code: &str, message: &str) -> Response<MaybeBroken> {
    let mut resp = json_response(status, &serde_json::json!({ "message": message }));
    if let Ok(v) = http::HeaderValue::from_str(code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

/// One percent-encoded path segment, decoded. Unlike a form value, `+` stays `+`
/// (an e-mail address may hold one); invalid UTF-8 is replaced.
pub(crate) fn percent_decode_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(high), Some(low)) = (bytes[i], hex(i + 1), hex(i + 2)) {
            // Two hex digits make at most 255.
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub(crate) fn error_xml(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response<MaybeBroken> {
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(message),
        request_id()
    );
    respond(status, "text/xml", body)
}

/// A Query API response in `namespace`:
/// `<ActionResponse><ActionResult>inner</ActionResult>…`.
pub(crate) fn wrap_in(namespace: &str, action: &str, inner: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{namespace}\"><{action}Result>{inner}</{action}Result>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        request_id()
    )
}
