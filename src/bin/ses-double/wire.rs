//! How the double's answers go on the wire: the response body that can break off
//! (for the `reset` fault), plain responses, the Query API's XML envelope and error
//! document (in SES's namespace, which the double also uses for STS's errors),
//! `Throttling`, request IDs and XML escaping.

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

/// SES's answer above its rate limit.
pub(crate) fn throttling() -> (Response<MaybeBroken>, &'static str) {
    let resp = error_xml(
        StatusCode::BAD_REQUEST,
        "Sender",
        "Throttling",
        "Rate exceeded",
    );
    (resp, "throttled")
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
