//! Choosing a connection's protocol from its first bytes, with a deadline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c): the client opened with the
    /// connection preface.
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the first bytes tell the protocol: HTTP/2 once the whole
/// preface has come, HTTP/1 as soon as a byte differs from it. Returns the
/// bytes read (to be read again by the protocol) or `None` if the client
/// closed first. The caller puts a deadline on it: a client that stops
/// midway through the preface must not hold the connection.
pub(super) async fn detect<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<(Protocol, Vec<u8>)>> {
    let mut seen = Vec::with_capacity(PREFACE.len());
    let mut chunk = [0u8; PREFACE.len()];
    loop {
        let n = stream
            .read(&mut chunk[..PREFACE.len() - seen.len()])
            .await?;
        if n == 0 {
            return Ok(None);
        }
        seen.extend_from_slice(&chunk[..n]);
        if !PREFACE.starts_with(&seen) {
            return Ok(Some((Protocol::Http1, seen)));
        }
        if seen.len() == PREFACE.len() {
            return Ok(Some((Protocol::Http2, seen)));
        }
    }
}

/// A stream that first gives back the bytes read to detect its protocol.
#[derive(Debug)]
pub(super) struct Rewind<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub(super) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_is_http2_anything_else_http1() {
        let mut h2 = &PREFACE[..];
        assert_eq!(detect(&mut h2).await.unwrap().unwrap().0, Protocol::Http2);
        let mut h1 = &b"GET / HTTP/1.1\r\n"[..];
        let (protocol, seen) = detect(&mut h1).await.unwrap().unwrap();
        assert_eq!(
            (protocol, seen.as_slice()),
            (Protocol::Http1, &b"GET / HTTP/1.1\r\n"[..])
        );
        // "PRI" then something else: HTTP/1 (hyper answers it as such).
        let mut almost = &b"PRI * HTTP/1.1\r\n"[..];
        assert_eq!(
            detect(&mut almost).await.unwrap().unwrap().0,
            Protocol::Http1
        );
        let mut closed = &b"PRI *"[..];
        assert!(detect(&mut closed).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rewind_reads_the_prefix_then_the_stream() {
        let mut stream = Rewind::new(b"GET".to_vec(), &b" / HTTP/1.1"[..]);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1");
    }
}
