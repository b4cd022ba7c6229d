//! A TCP proxy on 127.0.0.1 in front of a real Cassandra node, for the outage tests: stopping
//! it cuts every connection and refuses new ones (as a stopped node does, with its data kept);
//! starting it again on the same port brings the node back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running proxy forwarding every connection to `upstream`.
pub struct TcpProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on `listen` (port 0: any free port) and forwards to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every connection task, which
            // closes both of its sockets.
            let mut connections = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((mut client, _)) => {
                        connections.spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(upstream).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(TcpProxy { addr, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every connection; returns once the port is free.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
