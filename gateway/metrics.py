"""The gateway's counters, exposed on /metrics in Prometheus text format."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "fm_gateway_messages_received", "MQTT messages received", registry=r
        )
        self.stored = Counter(
            "fm_gateway_messages_stored", "Messages stored for the first time", registry=r
        )
        self.points = Counter(
            "fm_gateway_points_stored", "Samples, fixes and events stored", registry=r
        )
        self.dead_letters = Counter(
            "fm_gateway_dead_letters", "Messages kept as dead letters", registry=r
        )
        self.dead_letter_reasons = Counter(
            "fm_gateway_dead_letter_reasons",
            "Messages kept as dead letters, by reason",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "fm_gateway_rate_limited",
            "Messages over their device's rate: acknowledged, not stored, not receipted",
            registry=r,
        )
        self.poison = Counter(
            "fm_gateway_poison_isolated",
            "Messages that failed a batch write alone and were dead-lettered",
            registry=r,
        )
        self.batch_splits = Counter(
            "fm_gateway_batch_splits", "Failed batch writes split to isolate a message", registry=r
        )
        self.duplicates = Counter(
            "fm_gateway_duplicates", "Redelivered messages already stored", registry=r
        )
        self.db_errors = Counter(
            "fm_gateway_db_errors", "Failed batch writes (retried)", registry=r
        )
        self.queue_depth = Gauge(
            "fm_gateway_queue_depth", "Messages received, not yet written", registry=r
        )
        self.lag = Gauge(
            "fm_gateway_lag_seconds", "Age of the oldest message in the last batch", registry=r
        )
        self.mqtt_connected = Gauge(
            "fm_gateway_mqtt_connected", "1 when connected to the broker", registry=r
        )
        self.other_partition = Counter(
            "fm_gateway_other_partition",
            "Ordered-kind messages of devices another gateway partition owns (acknowledged unread)",
            registry=r,
        )
        self.last_commit = Gauge(
            "fm_gateway_last_commit_seconds",
            "Unix time of the last committed batch (acknowledged and receipted)",
            registry=r,
        )
        self.db_ok = Gauge("fm_gateway_db_ok", "1 when the last write succeeded", registry=r)
        self.latency = Histogram(
            "fm_gateway_ingest_latency_seconds",
            "Device timestamp of a message's newest item to its commit",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "fm_gateway_batch_seconds", "Time to write one batch", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
