//! The transport of one simulated incarnation: the in-memory network's transport, cut off at
//! once when the incarnation crashes (a crashed process sends nothing, receives nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dd_core::ReplicaId;
use dd_core::transport::memory::MemoryTransport;
use dd_core::transport::{IncomingStream, Message, Transport, TransportError};
use futures::StreamExt;

/// A [`MemoryTransport`] that stops sending and receiving once `dead` is set.
#[derive(Debug, Clone)]
pub struct CrashableTransport {
    inner: MemoryTransport,
    dead: Arc<AtomicBool>,
}

impl CrashableTransport {
    /// Wraps `inner`; `dead` is the incarnation's crash flag.
    pub fn new(inner: MemoryTransport, dead: Arc<AtomicBool>) -> Self {
        Self { inner, dead }
    }
}

impl Transport for CrashableTransport {
    fn send(&self, to: &ReplicaId, message: Message) {
        if !self.dead.load(Ordering::SeqCst) {
            self.inner.send(to, message);
        }
    }

    fn incoming(&self) -> Result<IncomingStream, TransportError> {
        let dead = Arc::clone(&self.dead);
        let stream = self.inner.incoming()?;
        Ok(Box::pin(stream.filter(move |_| {
            let alive = !dead.load(Ordering::SeqCst);
            async move { alive }
        })))
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}
