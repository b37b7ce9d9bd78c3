//! A connection's first bytes, read to tell which HTTP it speaks, handed
//! back to hyper before anything more is read from the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    One,
    Two,
}

impl Http {
    /// From a connection's first bytes: HTTP/2's preface, or anything else
    /// (HTTP/1.1, whose parser answers what is not HTTP). `None` while the
    /// bytes are a start of the preface cut short: more must be read.
    pub fn from_first_bytes(first: &[u8]) -> Option<Self> {
        if first == H2_PREFACE {
            Some(Http::Two)
        } else if H2_PREFACE.starts_with(first) {
            None
        } else {
            Some(Http::One)
        }
    }
}

/// Read from `io` until its first bytes tell its HTTP (at most the 24 bytes
/// of the preface), and keep them for hyper.
pub async fn read_first_bytes<IO: AsyncRead + Unpin>(mut io: IO) -> io::Result<(Http, Replay<IO>)> {
    let mut first = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let n = io.read(&mut first[len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if let Some(http) = Http::from_first_bytes(&first[..len]) {
            let replay = Replay {
                first,
                at: 0,
                len: len as u8,
                io,
            };
            return Ok((http, replay));
        }
    }
}

pin_project_lite::pin_project! {
    /// `io`, whose reads start with the bytes already read from it.
    pub struct Replay<IO> {
        first: [u8; 24],
        at: u8,
        len: u8,
        #[pin]
        io: IO,
    }
}

impl<IO: AsyncRead> AsyncRead for Replay<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.at < *this.len {
            let left = &this.first[usize::from(*this.at)..usize::from(*this.len)];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            *this.at += n as u8;
            return Poll::Ready(Ok(()));
        }
        this.io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for Replay<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_first_bytes_tell_http2_from_http1_and_a_cut_preface_asks_for_more() {
        assert_eq!(Http::from_first_bytes(H2_PREFACE), Some(Http::Two));
        assert_eq!(
            Http::from_first_bytes(b"GET / HTTP/1.1\r\n"),
            Some(Http::One)
        );
        // Starts like the preface, then is not it.
        assert_eq!(
            Http::from_first_bytes(b"PUT /x HTTP/1.1\r\n"),
            Some(Http::One)
        );
        assert_eq!(
            Http::from_first_bytes(b"PRI * HTTP/1.1\r\n"),
            Some(Http::One)
        );
        // Could still become the preface.
        assert_eq!(Http::from_first_bytes(b"P"), None);
        assert_eq!(Http::from_first_bytes(&H2_PREFACE[..23]), None);
        // Not HTTP at all: HTTP/1.1's parser answers it.
        assert_eq!(Http::from_first_bytes(b"\x16\x03\x01"), Some(Http::One));
    }

    #[tokio::test]
    async fn the_bytes_read_to_tell_come_first_then_the_rest_in_order() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PR").await.unwrap();
        let reading = tokio::spawn(read_first_bytes(server));
        client
            .write_all(b"I * HTTP/2.0\r\n\r\nSM\r\n\r\nframes")
            .await
            .unwrap();
        drop(client);
        let (http, mut replay) = reading.await.unwrap().unwrap();
        assert_eq!(http, Http::Two);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nframes");
    }

    #[tokio::test]
    async fn a_client_that_closes_before_telling_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI").await.unwrap();
        drop(client);
        assert!(read_first_bytes(server).await.is_err());
    }
}
