//! Proxy mode (`--upstream`): SES requests go on to another server (moto) and its
//! answers come back unchanged, so that the double only records them.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::wire::{error_xml, MaybeBroken};

/// Proxy mode: sends the request on to `upstream` over a fresh connection and relays
/// the answer. Returns the status for the record (502 when upstream failed).
pub(crate) async fn forward(
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
    let mut out = Response::from_parts(parts, MaybeBroken::full(body));
    out.headers_mut().remove(http::header::TRANSFER_ENCODING);
    (out.status().as_u16(), out)
}
