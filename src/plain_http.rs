//! Plain HTTP sent to a TLS port (`curl http://gateway:8443/`): answered
//! with a 400 that says the port speaks HTTPS and names the https:// URL,
//! as nginx's 497 does, instead of a TLS alert that clients show as "wrong
//! version number" or "empty reply from server".
//!
//! The first byte tells them apart: a TLS connection opens with a handshake
//! record (0x16), an HTTP/1.x request with its method in upper-case ASCII.
//! It is peeked, not read, so the TLS handshake still sees every byte.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Longest request head read to find the Host and the path.
const HEAD_MAX: usize = 8 * 1024;
/// After answering, how long unread bytes are drained: closing a socket
/// with unread data resets it, and the client may lose the answer.
const LINGER: Duration = Duration::from_secs(1);

/// Whether the connection was dealt with here (a plain HTTP request
/// answered, or nothing sent within `within`); `false`: a TLS handshake
/// (or something the handshake refuses) starts with its first byte.
pub async fn answered(tcp: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut first = [0u8; 1];
    match timeout(within, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0].is_ascii_uppercase() => {
            let _ = tokio::time::timeout_at(deadline, answer(tcp)).await;
            true
        }
        Ok(Ok(1)) => false,
        // Closed before its first byte, or a socket error.
        Ok(_) => true,
        Err(_) => {
            tracing::debug!("no TLS handshake within limits.tls_handshake_timeout");
            true
        }
    }
}

async fn answer(tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < HEAD_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = match https_url(&head) {
        Some(url) => format!(
            "400 Bad Request: this port speaks HTTPS, and a plain HTTP request came to it.\nUse {url}\n"
        ),
        None => "400 Bad Request: this port speaks HTTPS, and a plain HTTP request came to it.\nUse an https:// URL.\n".to_owned(),
    };
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await?;
    if let Ok(peer) = tcp.peer_addr() {
        tracing::debug!(client = %peer.ip(), "plain HTTP on the TLS port: answered 400");
    }
    let _ = tokio::time::timeout(LINGER, async {
        while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(())
}

/// `https://` + the request's Host + its path, when both are plain
/// visible ASCII (they go back to the client that sent them, as text).
fn https_url(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?;
    let host = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("host").then(|| value.trim())
    })?;
    let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    let ok = visible(host) && !host.contains('/') && target.starts_with('/') && visible(target);
    ok.then(|| format!("https://{host}{target}"))
}

#[cfg(test)]
mod tests {
    use super::https_url;

    #[test]
    fn the_url_is_made_of_the_host_and_path_sent() {
        assert_eq!(
            https_url(
                b"GET /hello?x=1 HTTP/1.1\r\nUser-Agent: curl\r\nHost: gw.example.org:8443\r\n\r\n"
            ),
            Some("https://gw.example.org:8443/hello?x=1".into())
        );
        assert_eq!(https_url(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(https_url(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), None);
        assert_eq!(
            https_url(b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"),
            None
        );
    }
}
