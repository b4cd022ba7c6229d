//! Prometheus metrics of a node: HTTP operations, gossip traffic (counted by
//! [`MeteredTransport`]) and the durable store's write counters (read from
//! [`DurableDistributedDataStore::stats`] at every scrape).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dd_core::ReplicaId;
use dd_core::cluster::Members;
use dd_core::transport::{Incoming, IncomingStream, Message, Transport, TransportError};
use dd_durable::DurableDistributedDataStore;
use futures::StreamExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Label of per-type metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// The API type name (`pncounter`, ...).
    pub data_type: String,
}

/// Label of per-message-kind metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The replicator message kind (`tree`, `leaf_digests`, `gossip`, `deltas`, ...).
    pub kind: &'static str,
}

/// Label of error metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The HTTP status code.
    pub status: u16,
}

/// Gossip traffic counters, shared by a [`MeteredTransport`] and the metrics registry.
#[derive(Debug, Default, Clone)]
pub struct GossipCounters {
    sent_messages: Family<KindLabel, Counter>,
    sent_bytes: Counter,
    received_messages: Family<KindLabel, Counter>,
    received_bytes: Counter,
}

/// All metrics of a node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Successful update requests per type.
    pub updates: Family<TypeLabel, Counter>,
    /// Operations applied by successful update requests, per type.
    pub update_operations: Family<TypeLabel, Counter>,
    /// Successful reads per type.
    pub reads: Family<TypeLabel, Counter>,
    /// Successful deletes per type.
    pub deletes: Family<TypeLabel, Counter>,
    /// Error responses per status.
    pub errors: Family<StatusLabel, Counter>,
    /// Duration of update requests (including the durable write in sync mode).
    pub update_duration: Histogram,
    /// Gossip traffic.
    pub gossip: GossipCounters,
    /// Keys this replica saw created with different types on different replicas (set when the
    /// metrics are scraped).
    pub type_conflicts: Gauge,
    durable: Arc<DurableCollector>,
}

#[derive(Debug, Default)]
struct DurableCollector {
    store: OnceLock<Arc<DurableDistributedDataStore>>,
}

fn write_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(e)
}

fn write_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(e)
}

impl Collector for DurableCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let s = store.stats();
        let e = &mut encoder;
        write_counter(
            e,
            "dd_durable_records_written",
            "Records written to the durable store.",
            s.records_written,
        )?;
        write_counter(
            e,
            "dd_durable_batches_written",
            "Batches the durable store acknowledged.",
            s.batches_written,
        )?;
        write_counter(
            e,
            "dd_durable_write_errors",
            "Failed durable writes (batches and keys).",
            s.write_errors,
        )?;
        write_counter(
            e,
            "dd_durable_conflicts_merged",
            "Conflicts with another writer of this replica that were merged.",
            s.conflicts_merged,
        )?;
        write_gauge(
            e,
            "dd_durable_pending_entries",
            "Entries queued (write-behind, or failed writes waiting for a retry), not yet written.",
            s.pending as f64,
        )?;
        let health = store.health();
        write_gauge(
            e,
            "dd_durable_healthy",
            "1 while the durable store keeps up with the writes, 0 while writes fail or failed \
             writes wait for a retry.",
            if health.healthy { 1.0 } else { 0.0 },
        )?;
        write_gauge(
            e,
            "dd_durable_consecutive_failures",
            "Failed write attempts since the durable store was last healthy.",
            health.consecutive_failures as f64,
        )?;
        write_gauge(
            e,
            "dd_durable_unhealthy_seconds",
            "How long the durable store has been unhealthy (0 while healthy).",
            health.unhealthy_for.map(|d| d.as_secs_f64()).unwrap_or(0.0),
        )?;
        write_gauge(
            e,
            "dd_durable_last_batch_latency_seconds",
            "How long the last acknowledged durable batch took.",
            s.last_batch_latency.map(|d| d.as_secs_f64()).unwrap_or(0.0),
        )
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            updates: Family::default(),
            update_operations: Family::default(),
            reads: Family::default(),
            deletes: Family::default(),
            errors: Family::default(),
            update_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            gossip: GossipCounters::default(),
            type_conflicts: Gauge::default(),
            durable: Arc::new(DurableCollector::default()),
        };
        registry.register(
            "dd_node_updates",
            "Successful update requests.",
            m.updates.clone(),
        );
        registry.register(
            "dd_node_update_operations",
            "Operations applied by successful update requests.",
            m.update_operations.clone(),
        );
        registry.register(
            "dd_node_reads",
            "Successful read requests.",
            m.reads.clone(),
        );
        registry.register(
            "dd_node_deletes",
            "Successful delete requests.",
            m.deletes.clone(),
        );
        registry.register(
            "dd_node_http_errors",
            "Error responses of the HTTP API.",
            m.errors.clone(),
        );
        registry.register(
            "dd_node_update_duration_seconds",
            "Duration of update requests, including the durable write in sync mode.",
            m.update_duration.clone(),
        );
        registry.register(
            "dd_node_gossip_sent_messages",
            "Replicator messages sent to peers.",
            m.gossip.sent_messages.clone(),
        );
        registry.register(
            "dd_node_gossip_sent_bytes",
            "Encoded bytes of replicator messages sent to peers.",
            m.gossip.sent_bytes.clone(),
        );
        registry.register(
            "dd_node_gossip_received_messages",
            "Replicator messages received from peers.",
            m.gossip.received_messages.clone(),
        );
        registry.register(
            "dd_node_gossip_received_bytes",
            "Encoded bytes of replicator messages received from peers.",
            m.gossip.received_bytes.clone(),
        );
        registry.register(
            "dd_type_conflicts",
            "Keys this replica saw created with different types on different replicas; each \
             keeps the value of the type whose name sorts first (GET of such a key answers 409).",
            m.type_conflicts.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&m.durable)));
        Self { registry, ..m }
    }

    /// Reports the durable store's counters from now on.
    pub fn watch_durable(&self, store: Arc<DurableDistributedDataStore>) {
        // A node has one store; a second call keeps the first.
        let _ = self.durable.store.set(store);
    }

    /// The health of the watched durable store (`None` before
    /// [`watch_durable`](Self::watch_durable)). Cheap: no call into the replica task.
    pub fn durable_health(&self) -> Option<dd_core::durable::DurableHealth> {
        self.durable.store.get().map(|store| store.health())
    }

    /// Records one update request of `ops` operations that took `elapsed`.
    pub fn record_update(&self, data_type: &str, ops: usize, elapsed: Duration) {
        let label = TypeLabel {
            data_type: data_type.to_owned(),
        };
        self.updates.get_or_create(&label).inc();
        self.update_operations
            .get_or_create(&label)
            .inc_by(ops as u64);
        self.update_duration.observe(elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The kind of a replicator message, as a metric label.
pub fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Tree { .. } => "tree",
        Message::LeafDigests { .. } => "leaf_digests",
        Message::Gossip { .. } => "gossip",
        Message::EntryChunk { .. } => "entry_chunk",
        Message::Deltas { .. } => "deltas",
        Message::Write { .. } => "write",
        Message::WriteAck { .. } => "write_ack",
        Message::Read { .. } => "read",
        Message::ReadResult { .. } => "read_result",
        Message::StreamBatch { .. } => "stream_batch",
        Message::StreamAck { .. } => "stream_ack",
    }
}

/// The postcard-encoded size of a message (what the TCP transport puts in a frame).
fn encoded_size(message: &Message) -> u64 {
    postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())
        .map(|n: usize| n as u64)
        .unwrap_or(0)
}

impl GossipCounters {
    fn count(family: &Family<KindLabel, Counter>, bytes: &Counter, message: &Message) {
        family
            .get_or_create(&KindLabel {
                kind: message_kind(message),
            })
            .inc();
        bytes.inc_by(encoded_size(message));
    }
}

/// A [`Transport`] that counts the messages and bytes going through another one.
#[derive(Debug)]
pub struct MeteredTransport<T> {
    inner: T,
    counters: GossipCounters,
}

impl<T: Transport> MeteredTransport<T> {
    /// Counts the traffic of `inner` into `counters`.
    pub fn new(inner: T, counters: GossipCounters) -> Self {
        Self { inner, counters }
    }
}

impl<T: Transport> Transport for MeteredTransport<T> {
    fn send(&self, to: &ReplicaId, message: Message) {
        GossipCounters::count(
            &self.counters.sent_messages,
            &self.counters.sent_bytes,
            &message,
        );
        self.inner.send(to, message);
    }

    fn incoming(&self) -> Result<IncomingStream, TransportError> {
        let counters = self.counters.clone();
        let stream = self.inner.incoming()?.map(move |incoming: Incoming| {
            GossipCounters::count(
                &counters.received_messages,
                &counters.received_bytes,
                &incoming.message,
            );
            incoming
        });
        Ok(Box::pin(stream))
    }

    fn follow_members(&self, members: watch::Receiver<Members>) {
        self.inner.follow_members(members);
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_every_family() {
        let m = Metrics::new();
        m.record_update("pncounter", 2, Duration::from_millis(3));
        GossipCounters::count(
            &m.gossip.sent_messages,
            &m.gossip.sent_bytes,
            &Message::WriteAck { request: 7 },
        );
        let text = m.encode().unwrap();
        assert!(
            text.contains("dd_node_updates_total{data_type=\"pncounter\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dd_node_update_operations_total{data_type=\"pncounter\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("dd_node_gossip_sent_messages_total{kind=\"write_ack\"} 1"),
            "{text}"
        );
        assert!(text.contains("dd_node_gossip_sent_bytes_total 2"), "{text}");
        assert!(
            text.contains("dd_node_update_duration_seconds_count 1"),
            "{text}"
        );
    }
}
