//! The `healthcheck` subcommand's probe of `/-/healthy` ([`probe`]), for container health
//! checks (a distroless image has no curl); it never touches the running exporter's state.
//!
//! Blocking on purpose: the binary runs it instead of the exporter, before any async
//! runtime exists, and one request with 3 s timeouts needs none.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use super::{tls, web_config};

/// Probes `/-/healthy` on this host's exporter bound to `listen_address`; `Err` is
/// what went wrong, for the binary to print after `healthcheck: `.
/// With TLS in the web config it speaks TLS (not checking the certificate: it asks
/// its own host); where the handshake needs a client certificate it can only check
/// that the port accepts connections. It reads only what the web config says about
/// TLS ([`web_config::probe_mode`]) and makes its client with
/// [`tls::probe_client_config`].
pub fn probe(listen_address: &str, web_config: Option<&Path>) -> Result<(), String> {
    let mode = web_config
        .map(web_config::probe_mode)
        .transpose()
        .map_err(|err| err.to_string())?;
    let target = probe_address(listen_address);
    let result = (|| -> std::io::Result<String> {
        let addr = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.set_write_timeout(Some(Duration::from_secs(3)))?;
        let request = b"GET /-/healthy HTTP/1.0\r\nHost: localhost\r\n\r\n";
        let mut head = [0u8; 64];
        let n = match mode {
            Some(mode) if mode.client_cert_required => {
                return Ok(
                    "HTTP/1.1 200 (TCP only: the TLS handshake needs a client certificate)"
                        .to_owned(),
                );
            }
            Some(mode) if mode.tls => {
                let config = tls::probe_client_config().map_err(std::io::Error::other)?;
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(std::io::Error::other)?;
                let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
                    .map_err(std::io::Error::other)?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                tls.write_all(request)?;
                tls.read(&mut head)?
            }
            _ => {
                stream.write_all(request)?;
                stream.read(&mut head)?
            }
        };
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    })();
    match result {
        Ok(head) if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") => Ok(()),
        Ok(head) => Err(format!(
            "{target} answered {:?}",
            head.lines().next().unwrap_or("")
        )),
        Err(err) => Err(format!("{target}: {err}")),
    }
}

/// Where a probe on this host reaches a server bound to `listen_address`: loopback
/// for `:PORT` and the wildcard addresses, the address itself otherwise.
fn probe_address(listen_address: &str) -> String {
    if let Some(port) = listen_address.strip_prefix(':') {
        return format!("127.0.0.1:{port}");
    }
    for wildcard in ["0.0.0.0:", "[::]:"] {
        if let Some(port) = listen_address.strip_prefix(wildcard) {
            return format!("127.0.0.1:{port}");
        }
    }
    listen_address.to_owned()
}
