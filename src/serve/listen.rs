//! Where the server listens: the `--web.listen-address` sockets it binds (one or
//! more), or the sockets systemd passed it (`--web.systemd-socket`, socket
//! activation), and accepting from all of them at once.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};

/// Binds one `--web.listen-address`; `:PORT` means every interface, IPv6 and IPv4
/// where the host has IPv6, IPv4 alone where it does not.
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port {port:?}"),
            )
        })?;
        return match TcpListener::bind(("::", port)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(("0.0.0.0", port)).await,
        };
    }
    TcpListener::bind(addr).await
}

/// Why socket activation gave no listeners.
#[derive(Debug, thiserror::Error)]
pub enum SystemdSocketError {
    #[error(
        "systemd passed no sockets (LISTEN_FDS is unset or 0, or LISTEN_PID names another \
         process): start the exporter from its .socket unit, or drop --web.systemd-socket"
    )]
    NoneGiven,
    #[error("socket {index} of the {count} systemd passed: {reason}")]
    Unusable {
        index: usize,
        count: usize,
        reason: String,
    },
}

/// Takes every socket systemd passed (`LISTEN_FDS` of them from fd 3, for this
/// process by `LISTEN_PID`), each of which must be a listening TCP socket (IPv4
/// or IPv6): a UDP or Unix socket, or a connection (`Accept=yes` passes one per
/// connection), is refused here rather than failing every accept later. Call it
/// before any other thread exists: it removes `LISTEN_PID` and `LISTEN_FDS` from
/// the environment (so children do not inherit them), which is only sound while
/// the process has one thread. The sockets come back blocking, as passed;
/// [`into_tokio`] makes them non-blocking.
pub fn systemd_sockets() -> Result<Vec<std::net::TcpListener>, SystemdSocketError> {
    let mut fds = listenfd::ListenFd::from_env();
    let count = fds.len();
    if count == 0 {
        return Err(SystemdSocketError::NoneGiven);
    }
    (0..count)
        .map(|index| {
            let unusable = |reason: String| SystemdSocketError::Unusable {
                index,
                count,
                reason,
            };
            match fds.take_tcp_listener(index) {
                Ok(Some(listener)) => listening(listener).map_err(unusable),
                Ok(None) => Err(unusable("already taken".to_owned())),
                Err(err) => Err(unusable(err.to_string())),
            }
        })
        .collect()
}

/// `listener` when it is not connected to a peer: listenfd checks the socket's
/// type and family only, and a connection (from `Accept=yes`) would pass.
fn listening(listener: std::net::TcpListener) -> Result<std::net::TcpListener, String> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let fd = listener.as_raw_fd();
    // The same descriptor seen as a stream, to ask for its peer (no copy, no unsafe).
    let stream = std::net::TcpStream::from(OwnedFd::from(listener));
    if let Ok(peer) = stream.peer_addr() {
        return Err(format!(
            "fd {fd} is a connection from {peer}, not a listening socket \
             (the .socket unit needs Accept=no)"
        ));
    }
    Ok(std::net::TcpListener::from(OwnedFd::from(stream)))
}

/// A listener systemd passed, for the runtime (which needs it non-blocking).
pub fn into_tokio(listener: std::net::TcpListener) -> io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// The next connection on any of `listeners`, trying them in turn from the one
/// after the last that gave a connection, so a busy listener cannot starve the
/// others. Cancel-safe, as each listener's accept is.
pub async fn accept_any(
    listeners: &[TcpListener],
    next: &mut usize,
) -> io::Result<(TcpStream, SocketAddr)> {
    poll_fn(|cx| {
        let n = listeners.len();
        for i in 0..n {
            let at = (*next + i) % n;
            if let Poll::Ready(accepted) = listeners[at].poll_accept(cx) {
                *next = (at + 1) % n;
                return Poll::Ready(accepted);
            }
        }
        // Every listener registered the waker: the first with a connection wakes us.
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_on_every_listener() {
        let listeners = vec![
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut next = 0;
        // Connect to the second only: the first has nothing and must not block it.
        let _client = TcpStream::connect(addrs[1]).await.unwrap();
        let (conn, _) = accept_any(&listeners, &mut next).await.unwrap();
        assert_eq!(conn.local_addr().unwrap(), addrs[1]);
        assert_eq!(next, 0);
        let _client = TcpStream::connect(addrs[0]).await.unwrap();
        let (conn, _) = accept_any(&listeners, &mut next).await.unwrap();
        assert_eq!(conn.local_addr().unwrap(), addrs[0]);
    }

    #[tokio::test]
    async fn takes_turns_when_both_have_connections() {
        let listeners = vec![
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut clients = Vec::new();
        for _ in 0..2 {
            for a in &addrs {
                clients.push(TcpStream::connect(a).await.unwrap());
            }
        }
        let mut next = 0;
        let mut order = Vec::new();
        for _ in 0..4 {
            let (conn, _) = accept_any(&listeners, &mut next).await.unwrap();
            order.push(
                addrs
                    .iter()
                    .position(|a| *a == conn.local_addr().unwrap())
                    .unwrap(),
            );
        }
        assert_eq!(order, [0, 1, 0, 1]);
    }

    #[tokio::test]
    async fn a_bad_port_names_it() {
        let err = bind(":http").await.unwrap_err();
        assert!(err.to_string().contains("\"http\""), "{err}");
    }
}
