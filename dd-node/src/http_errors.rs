//! JSON bodies for the error responses that hyper writes by itself.
//!
//! A request whose head hyper cannot parse never reaches the router: hyper answers it with an
//! empty body and closes the connection — 400 for a malformed request line or header (raw bytes
//! that are not allowed in a URL, a bad method or header), 414 for a request target longer than
//! its fixed limit of [`MAX_URI_BYTES`], 431 for a head larger than its read buffer
//! ([`MAX_HEAD_BYTES`]) or with more than [`MAX_HEADERS`] headers. None of these limits is a
//! setting that would let the router answer instead (the URI limit is a constant of hyper), so
//! [`JsonErrorListener`] wraps every accepted connection in [`JsonErrorIo`], which replaces such
//! an automatic response, as it is written, by the same status with a JSON body
//! `{"error": "..."}` naming what was wrong, like every other error of the API.
//!
//! An automatic response is recognised as the head that ends the bytes hyper writes, with one of
//! those statuses, an empty body (`content-length: 0`) and no `content-type`. Every response of
//! the router has a `content-type`, and no body it writes holds a raw CR LF pair (JSON escapes
//! them), so no other response can look like one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The longest request target hyper accepts (a constant of hyper: `u16::MAX - 1`).
pub const MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// The largest request head (request line and headers) hyper reads: its default read buffer.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// The most headers hyper accepts in one request.
pub const MAX_HEADERS: usize = 100;

/// A [`TcpListener`] whose connections are [`JsonErrorIo`]s, for [`axum::serve`].
#[derive(Debug)]
pub struct JsonErrorListener {
    inner: TcpListener,
}

impl JsonErrorListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for JsonErrorListener {
    type Io = JsonErrorIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.inner).await;
        (JsonErrorIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection whose automatic hyper error responses get a JSON body (see the
/// [module docs](self)); everything else passes unchanged.
#[derive(Debug)]
pub struct JsonErrorIo<S> {
    inner: S,
    /// A rewritten response not yet (completely) written to `inner`.
    pending: Vec<u8>,
    /// How much of `pending` is written.
    written: usize,
}

impl<S> JsonErrorIo<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrorIo<S> {
    /// Writes what is left of `pending`.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrorIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(rewritten) = rewrite(buf) {
            this.pending = rewritten;
            this.written = 0;
            // The whole of `buf` is taken over; what `inner` does not take now is written by the
            // next write, flush or shutdown.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What an automatic response of `status` says.
fn message(status: u16) -> Option<String> {
    Some(match status {
        400 => "bad request: the request line or a header is not valid HTTP/1.1 (for example a \
                path with raw bytes that a URL cannot hold: percent-encode keys as UTF-8, e.g. \
                %C3%A9 for é)"
            .to_owned(),
        414 => format!(
            "URI too long: the request target may have at most {MAX_URI_BYTES} bytes (a key \
             this long cannot be addressed)"
        ),
        431 => format!(
            "request head too large: the request line and headers may have at most \
             {MAX_HEAD_BYTES} bytes and {MAX_HEADERS} headers"
        ),
        _ => return None,
    })
}

/// `buf` with its final head replaced by a JSON response, if that head is an automatic error
/// response of hyper.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    const END: &[u8] = b"\r\n\r\n";
    const START: &[u8] = b"HTTP/1.1 ";
    if !buf.ends_with(END) {
        return None;
    }
    let start = buf.windows(START.len()).rposition(|w| w == START)?;
    let head = std::str::from_utf8(&buf[start..buf.len() - END.len()]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()?
        .get(START.len()..START.len() + 3)?
        .parse()
        .ok()?;
    let text = message(status)?;
    let mut empty = false;
    let mut kept = Vec::new();
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-type:") {
            return None;
        }
        if let Some(length) = lower.strip_prefix("content-length:") {
            empty = length.trim() == "0";
        } else if !lower.starts_with("connection:") {
            kept.push(line);
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "error": text, "status": status }).to_string();
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = buf[..start].to_vec();
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for line in kept {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_automatic_error_heads() {
        let auto = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite(auto).unwrap()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 414 URI Too Long\r\ndate: x\r\n"),
            "{out}"
        );
        let (_, body) = out.split_once("\r\n\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("URI too long"));
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));

        // After a complete earlier response on the same connection: that one is kept.
        let mut two =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec();
        two.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        let out = String::from_utf8(rewrite(&two).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("HTTP/1.1 400 Bad Request\r\n"), "{out}");

        // The router's own responses are never touched.
        let json = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(rewrite(json), None);
        assert_eq!(
            rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(
            rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n"),
            None
        );
        assert_eq!(rewrite(b"{\"a\":1}"), None);
    }
}
