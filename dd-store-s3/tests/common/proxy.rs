//! A loopback TCP proxy that can be stopped and restarted on the same port, and can strip the
//! `If-Match`/`If-None-Match` request headers (a server that "ignores" conditional writes).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running (or stopped) proxy.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    strip_conditions: bool,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, strip_conditions: bool) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the upstream must be http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut proxy = Proxy {
            addr,
            upstream,
            strip_conditions,
            task: None,
        };
        proxy.task = Some(tokio::spawn(serve(listener, upstream, strip_conditions)));
        proxy
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
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
                        self.strip_conditions,
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

async fn serve(listener: TcpListener, upstream: SocketAddr, strip_conditions: bool) {
    // Dropping this task (abort) drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    if strip_conditions {
                        forward_stripping(client, server).await;
                    } else {
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards HTTP/1.1 requests without their conditional headers; responses pass unchanged.
async fn forward_stripping(client: TcpStream, server: TcpStream) {
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    let responses = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    let requests = forward_requests(BufReader::new(client_read), server_write);
    tokio::join!(requests, responses);
}

async fn forward_requests(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut server_write: tokio::net::tcp::OwnedWriteHalf,
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
            if lower.starts_with("if-match:") || lower.starts_with("if-none-match:") {
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
