//! Prometheus metrics with Centrifugo's names and labels (`centrifugo_node_num_clients`,
//! `centrifugo_client_connections_accepted`, `centrifugo_transport_messages_sent`, ...), so an
//! existing Centrifugo dashboard reads a Gyre node unchanged.
//!
//! Gauges are read from the hub when scraped (nothing to keep up to date); counters on the
//! message path are resolved once per session ([`TransportCounters`]) and bumped once per
//! written batch, never per subscriber.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Command duration buckets, seconds (upstream's).
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.010, 0.025, 0.050, 0.100, 0.250, 0.500, 1.0, 2.5, 5.0,
    10.0,
];

/// Every metric of a node.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    num_clients: IntGauge,
    num_users: IntGauge,
    num_subscriptions: IntGauge,
    num_channels: IntGauge,
    num_nodes: IntGauge,
    tags_filter_dropped: IntGauge,
    connections_accepted: IntCounterVec,
    command_duration: HistogramVec,
    reply_errors: IntCounterVec,
    server_disconnects: IntCounterVec,
    messages_sent: IntCounterVec,
    messages_sent_size: IntCounterVec,
    messages_received: IntCounterVec,
    messages_received_size: IntCounterVec,
    /// `node_messages_sent_count{type="publication"}`, resolved once: bumped on every publish.
    publications_sent: IntCounter,
    recover: IntCounterVec,
    consumer_processed: IntCounterVec,
    consumer_errors: IntCounterVec,
    consumer_skipped: IntCounterVec,
}

/// The counters of one asynchronous consumer (label `consumer_name`), resolved once.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerCounters {
    /// `consumers_messages_processed_total`: messages done with (applied or skipped).
    pub processed: IntCounter,
    /// `consumers_errors_total`: temporary failures that are retried.
    pub errors: IntCounter,
    /// `consumers_messages_skipped_total`: messages dropped on a permanent error.
    pub skipped: IntCounter,
}

/// The message counters of one transport, resolved once and shared by its sessions.
#[derive(Debug, Clone)]
pub(crate) struct TransportCounters {
    sent: IntCounter,
    sent_size: IntCounter,
    received: IntCounter,
    received_size: IntCounter,
}

impl TransportCounters {
    /// Counts `messages` units of `bytes` in all written to the client.
    pub(crate) fn sent(&self, messages: usize, bytes: usize) {
        self.sent.inc_by(messages as u64);
        self.sent_size.inc_by(bytes as u64);
    }

    /// Counts `messages` commands of `bytes` in all read from the client.
    pub(crate) fn received(&self, messages: usize, bytes: usize) {
        self.received.inc_by(messages as u64);
        self.received_size.inc_by(bytes as u64);
    }
}

fn counter_vec(
    registry: &Registry,
    subsystem: &str,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help).subsystem(subsystem), labels)
        .unwrap_or_else(|err| unreachable_metric(name, &err));
    register(registry, vec)
}

fn gauge(registry: &Registry, subsystem: &str, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::with_opts(Opts::new(name, help).subsystem(subsystem))
        .unwrap_or_else(|err| unreachable_metric(name, &err));
    register(registry, gauge)
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(err) = registry.register(Box::new(metric.clone())) {
        tracing::warn!("metric not registered: {err}");
    }
    metric
}

/// Metric definitions are constants of this module: an invalid one is a programming error
/// caught by the unit tests.
fn unreachable_metric<T>(name: &str, err: &prometheus::Error) -> T {
    panic!("metric {name} is invalid: {err}")
}

impl Metrics {
    /// Registers every metric under the `centrifugo` namespace.
    pub(crate) fn new(version: &str) -> Arc<Metrics> {
        let registry = Registry::new_custom(Some("centrifugo".to_owned()), None)
            .unwrap_or_else(|err| unreachable_metric("registry", &err));
        let r = &registry;
        let build = IntGaugeVec::new(
            Opts::new("build", "Node build info.").subsystem("node"),
            &["version"],
        )
        .unwrap_or_else(|err| unreachable_metric("build", &err));
        build.with_label_values(&[version]).set(1);
        register(r, build);
        let command_duration = HistogramVec::new(
            HistogramOpts::new(
                "command_duration_seconds_histogram",
                "Client command duration histogram.",
            )
            .subsystem("client")
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "channel_namespace"],
        )
        .unwrap_or_else(|err| unreachable_metric("command_duration", &err));
        let node_messages_sent = counter_vec(
            r,
            "node",
            "messages_sent_count",
            "Number of messages sent by node to broker.",
            &["type", "channel_namespace"],
        );
        let metrics = Metrics {
            publications_sent: node_messages_sent.with_label_values(&["publication", ""]),
            num_clients: gauge(r, "node", "num_clients", "Number of clients connected."),
            num_users: gauge(r, "node", "num_users", "Number of unique users connected."),
            num_subscriptions: gauge(r, "node", "num_subscriptions", "Number of subscriptions."),
            num_channels: gauge(
                r,
                "node",
                "num_channels",
                "Number of channels with one or more subscribers.",
            ),
            num_nodes: gauge(r, "node", "num_nodes", "Number of nodes in the cluster."),
            tags_filter_dropped: gauge(
                r,
                "node",
                "tags_filter_dropped_publications",
                "Deliveries skipped because the subscriber's tags filter did not match.",
            ),
            connections_accepted: counter_vec(
                r,
                "client",
                "connections_accepted",
                "Number of accepted connections.",
                &[
                    "transport",
                    "accept_protocol",
                    "client_name",
                    "client_version",
                ],
            ),
            command_duration: register(r, command_duration),
            reply_errors: counter_vec(
                r,
                "client",
                "num_reply_errors",
                "Number of errors in replies sent to clients.",
                &["method", "code", "channel_namespace"],
            ),
            server_disconnects: counter_vec(
                r,
                "client",
                "num_server_disconnects",
                "Number of server initiated disconnects.",
                &["code"],
            ),
            messages_sent: counter_vec(
                r,
                "transport",
                "messages_sent",
                "Number of messages sent to client connections over specific transport.",
                &["transport", "frame_type", "channel_namespace"],
            ),
            messages_sent_size: counter_vec(
                r,
                "transport",
                "messages_sent_size",
                "Size in bytes of messages sent to client connections over specific transport.",
                &["transport", "frame_type", "channel_namespace"],
            ),
            messages_received: counter_vec(
                r,
                "transport",
                "messages_received",
                "Number of messages received from client connections over specific transport.",
                &["transport", "frame_type", "channel_namespace"],
            ),
            messages_received_size: counter_vec(
                r,
                "transport",
                "messages_received_size",
                "Size in bytes of messages received from client connections over specific transport.",
                &["transport", "frame_type", "channel_namespace"],
            ),
            recover: counter_vec(
                r,
                "client",
                "recover",
                "Count of recovery attempts.",
                &[
                    "recovered",
                    "channel_namespace",
                    "has_recovered_publications",
                ],
            ),
            consumer_processed: counter_vec(
                r,
                "consumers",
                "messages_processed_total",
                "Total number of processed messages in consumer",
                &["consumer_name"],
            ),
            consumer_errors: counter_vec(
                r,
                "consumers",
                "errors_total",
                "Total number of errors in consumer",
                &["consumer_name"],
            ),
            consumer_skipped: counter_vec(
                r,
                "consumers",
                "messages_skipped_total",
                "Total number of messages a consumer skipped on a permanent error",
                &["consumer_name"],
            ),
            registry,
        };
        Arc::new(metrics)
    }

    /// The counters of a transport, for its sessions to keep.
    pub(crate) fn transport(&self, name: &str) -> Arc<TransportCounters> {
        let labels = [name, "", ""];
        Arc::new(TransportCounters {
            sent: self.messages_sent.with_label_values(&labels),
            sent_size: self.messages_sent_size.with_label_values(&labels),
            received: self.messages_received.with_label_values(&labels),
            received_size: self.messages_received_size.with_label_values(&labels),
        })
    }

    /// The counters of consumer `name` (created at zero, as upstream does at start-up).
    pub(crate) fn consumer(&self, name: &str) -> ConsumerCounters {
        ConsumerCounters {
            processed: self.consumer_processed.with_label_values(&[name]),
            errors: self.consumer_errors.with_label_values(&[name]),
            skipped: self.consumer_skipped.with_label_values(&[name]),
        }
    }

    /// A connection was accepted (its connect succeeded).
    pub(crate) fn connection_accepted(&self, transport: &str, name: &str, version: &str) {
        self.connections_accepted
            .with_label_values(&[transport, "h1", name, version])
            .inc();
    }

    /// A command was answered after `elapsed`.
    pub(crate) fn command(&self, method: &str, elapsed: Duration) {
        self.command_duration
            .with_label_values(&[method, ""])
            .observe(elapsed.as_secs_f64());
    }

    /// A command was answered with error `code`.
    pub(crate) fn reply_error(&self, method: &str, code: u32) {
        self.reply_errors
            .with_label_values(&[method, &code.to_string(), ""])
            .inc();
    }

    /// The server closed a connection with `code`.
    pub(crate) fn server_disconnect(&self, code: u32) {
        self.server_disconnects
            .with_label_values(&[&code.to_string()])
            .inc();
    }

    /// The node published a publication.
    pub(crate) fn publication_sent(&self) {
        self.publications_sent.inc();
    }

    /// A subscriber asked to recover.
    pub(crate) fn recovery(&self, recovered: bool, with_publications: bool) {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        self.recover
            .with_label_values(&[yes_no(recovered), "", yes_no(with_publications)])
            .inc();
    }

    /// The text exposition, with the node gauges read now.
    pub(crate) fn render(&self, counts: &crate::hub::HubCounts, nodes: usize) -> String {
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.num_clients.set(as_gauge(counts.clients));
        self.num_users.set(as_gauge(counts.users));
        self.num_subscriptions.set(as_gauge(counts.subscriptions));
        self.num_channels.set(as_gauge(counts.channels));
        self.num_nodes.set(as_gauge(nodes));
        self.tags_filter_dropped
            .set(i64::try_from(counts.tags_filter_dropped).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics not encoded: {err}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_valid_and_named_as_upstream() {
        let m = Metrics::new("1.2.3");
        m.transport("websocket").sent(3, 30);
        m.connection_accepted("websocket", "js", "5");
        m.command("subscribe", Duration::from_millis(2));
        m.reply_error("subscribe", 103);
        m.server_disconnect(3001);
        m.publication_sent();
        m.recovery(true, false);
        m.consumer("outbox").skipped.inc();
        let text = m.render(
            &crate::hub::HubCounts {
                clients: 2,
                ..Default::default()
            },
            1,
        );
        for line in [
            "centrifugo_node_num_clients 2",
            "centrifugo_node_num_nodes 1",
            "centrifugo_node_build{version=\"1.2.3\"} 1",
            "centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"\",transport=\"websocket\"} 3",
            "centrifugo_transport_messages_sent_size{channel_namespace=\"\",frame_type=\"\",transport=\"websocket\"} 30",
            "centrifugo_client_num_server_disconnects{code=\"3001\"} 1",
            "centrifugo_node_messages_sent_count{channel_namespace=\"\",type=\"publication\"} 1",
            "centrifugo_consumers_messages_skipped_total{consumer_name=\"outbox\"} 1",
            "centrifugo_consumers_messages_processed_total{consumer_name=\"outbox\"} 0",
            "centrifugo_consumers_errors_total{consumer_name=\"outbox\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.contains("centrifugo_client_command_duration_seconds_histogram_bucket"));
    }
}
