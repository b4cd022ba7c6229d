//! A loopback TCP proxy that can be stopped and restarted on the same port, and can strip the
//! `If-Match`/`If-None-Match` request headers (a server that "ignores" conditional writes), strip
//! `If-Match` only (a proxy that drops just that header), or serialize every request (making a
//! server's check-then-write conditional writes atomic). In every mode but `Forward` it records
//! the request line of every request it forwards ([`Proxy::requests`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards bytes unchanged.
    Forward,
    /// Drops `If-Match` and `If-None-Match` request headers.
    StripConditions,
    /// Drops the `If-Match` request header only (`If-None-Match` passes).
    StripIfMatch,
    /// Forwards one request/response exchange at a time over all connections.
    Serialize,
}

/// A running (or stopped) proxy.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: Mode,
    task: Option<JoinHandle<()>>,
    log: RequestLog,
}

/// The request lines (`PUT /bucket/object HTTP/1.1`) forwarded so far.
type RequestLog = Arc<StdMutex<Vec<String>>>;

impl Proxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, mode: Mode) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the upstream must be http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let log = RequestLog::default();
        let mut proxy = Proxy {
            addr,
            upstream,
            mode,
            task: None,
            log: log.clone(),
        };
        proxy.task = Some(tokio::spawn(serve(listener, upstream, mode, log)));
        proxy
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request lines forwarded so far (not recorded in [`Mode::Forward`]), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("request log").clone()
    }

    /// Closes the listener and every open connection.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port (bounded retries while the port is released).
    pub async fn restart(&mut self) {
        self.stop().await;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.task = Some(tokio::spawn(serve(
                        listener,
                        self.upstream,
                        self.mode,
                        self.log.clone(),
                    )));
                    return;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        panic!("could not listen on {} again", self.addr);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, mode: Mode, log: RequestLog) {
    // Dropping this task (abort) drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    let exchange_lock = Arc::new(Mutex::new(()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let exchange_lock = exchange_lock.clone();
                let log = log.clone();
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    match mode {
                        Mode::StripConditions => {
                            let strip = &["if-match:", "if-none-match:"];
                            forward_stripping(client, server, strip, log).await
                        }
                        Mode::StripIfMatch => {
                            forward_stripping(client, server, &["if-match:"], log).await
                        }
                        Mode::Serialize => {
                            forward_serialized(client, server, exchange_lock, log).await
                        }
                        Mode::Forward => {
                            let (mut client, mut server) = (client, server);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards HTTP/1.1 requests without the headers whose lower-cased lines start with one of
/// `strip`; responses pass unchanged.
async fn forward_stripping(
    client: TcpStream,
    server: TcpStream,
    strip: &'static [&'static str],
    log: RequestLog,
) {
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    let responses = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    let requests = forward_requests(BufReader::new(client_read), server_write, strip, log);
    tokio::join!(requests, responses);
}

async fn forward_requests(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut server_write: tokio::net::tcp::OwnedWriteHalf,
    strip: &'static [&'static str],
    log: RequestLog,
) {
    'requests: loop {
        let mut head = Vec::new();
        let mut content_length = 0u64;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => break 'requests,
                Ok(_) => {}
            }
            let lower = line.to_ascii_lowercase();
            if head.is_empty() {
                log.lock()
                    .expect("request log")
                    .push(line.trim_end().to_owned());
            }
            if strip.iter().any(|s| lower.starts_with(s)) {
                continue;
            }
            if let Some(value) = lower.strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap_or(0);
            }
            assert!(
                !lower.starts_with("transfer-encoding:"),
                "the stripping proxy only handles Content-Length bodies"
            );
            let end = line == "\r\n";
            head.extend_from_slice(line.as_bytes());
            if end {
                break;
            }
        }
        if server_write.write_all(&head).await.is_err() {
            break;
        }
        let mut body = (&mut reader).take(content_length);
        if tokio::io::copy(&mut body, &mut server_write).await.is_err() {
            break;
        }
    }
    let _ = server_write.shutdown().await;
}

/// Reads an HTTP/1.1 head (start line and headers) as raw bytes and lower-cased header lines;
/// `None` at the end of the stream.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Option<(Vec<u8>, Vec<String>)> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        raw.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            return Some((raw, lines));
        }
        lines.push(line.trim_end().to_ascii_lowercase());
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .skip(1)
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Copies a chunked body (chunks and trailer) unchanged.
async fn copy_chunked<R, W>(reader: &mut R, writer: &mut W) -> Option<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).await.ok()?;
        writer.write_all(size_line.as_bytes()).await.ok()?;
        let size_hex = size_line.trim().split(';').next()?.to_owned();
        let size = u64::from_str_radix(&size_hex, 16).ok()?;
        if size == 0 {
            // Trailer lines up to the empty line.
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.ok()?;
                writer.write_all(line.as_bytes()).await.ok()?;
                if line == "\r\n" || line.is_empty() {
                    return Some(());
                }
            }
        }
        let mut chunk = (&mut *reader).take(size + 2);
        tokio::io::copy(&mut chunk, writer).await.ok()?;
    }
}

/// Forwards a body framed by `lines` (Content-Length or chunked; `none`: no body).
async fn copy_body<R, W>(reader: &mut R, writer: &mut W, lines: &[String], none: bool) -> Option<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    if none {
        return Some(());
    }
    if header(lines, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return copy_chunked(reader, writer).await;
    }
    let length: u64 = header(lines, "content-length")
        .map(|v| v.parse().ok())
        .unwrap_or(Some(0))?;
    let mut body = (&mut *reader).take(length);
    tokio::io::copy(&mut body, writer).await.ok()?;
    Some(())
}

/// Forwards request/response exchanges one at a time (across all connections).
async fn forward_serialized(
    client: TcpStream,
    server: TcpStream,
    lock: Arc<Mutex<()>>,
    log: RequestLog,
) {
    let (client_read, mut client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    let mut client_read: BufReader<OwnedReadHalf> = BufReader::new(client_read);
    let mut server_read: BufReader<OwnedReadHalf> = BufReader::new(server_read);
    loop {
        let Some((head, lines)) = read_head(&mut client_read).await else {
            break;
        };
        if let Some(request_line) = std::str::from_utf8(&head)
            .ok()
            .and_then(|h| h.lines().next())
        {
            log.lock()
                .expect("request log")
                .push(request_line.to_owned());
        }
        let is_head = lines.first().is_some_and(|l| l.starts_with("head "));
        let _exchange = lock.lock().await;
        if server_write.write_all(&head).await.is_err() {
            break;
        }
        if copy_body(&mut client_read, &mut server_write, &lines, false)
            .await
            .is_none()
        {
            break;
        }
        if forward_response(&mut server_read, &mut client_write, is_head)
            .await
            .is_none()
        {
            break;
        }
    }
    let _ = client_write.shutdown().await;
}

async fn forward_response(
    server_read: &mut BufReader<OwnedReadHalf>,
    client_write: &mut OwnedWriteHalf,
    is_head: bool,
) -> Option<()> {
    loop {
        let (head, lines) = read_head(server_read).await?;
        client_write.write_all(&head).await.ok()?;
        let status: u16 = lines.first()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            continue;
        }
        let no_body = is_head || status == 204 || status == 304;
        return copy_body(server_read, client_write, &lines, no_body).await;
    }
}
