"""The ingest service: MQTT v5 shared subscriptions in, batched idempotent writes out.

Threads: paho's network thread only enqueues (a bounded queue: when full it blocks, which
stops reading the socket and pushes back on the broker); one writer thread decodes,
writes a batch in one transaction, and only then acknowledges each message to the broker
(manual PUBACK) and sends each device a receipt of its stored seqs. A gateway killed at
any moment has acknowledged nothing it had not committed; the broker redelivers the rest
to the same persistent session, and duplicates are dropped on `(device_id, seq)`.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.backoff import backoff_delay_s
from gateway.decode import Decoded, Inbound, Rejected, decode_inbound
from gateway.metrics import GatewayMetrics
from gateway.mqttio import FastClient, ack_and_publish
from gateway.pipeline import StageHandler
from gateway.rateguard import DEFAULT_BURST, DEFAULT_RATE_PER_S, RateGuard, device_of
from gateway.writer import (
    BatchWriter,
    DatabaseUnavailable,
    DeviceAdmission,
    EventVerifier,
    WriteResult,
    no_verifier,
)
from kernel.broker import client_endpoint
from kernel.settings import Settings
from telemetry.contracts import SCHEMA_VERSION, Kind, Receipt, Topic, device_filter, encode
from telemetry.schema import ensure_partitions

log = logging.getLogger(__name__)

# Per-device order matters for these (geofence state, visits, event sequences, online
# status, command acks): each device's messages of these kinds reach one gateway, in order.
ORDERED_KINDS = (Kind.GPS, Kind.EVENT, Kind.STATUS, Kind.ACK)
# Order-free: samples are keyed by (device, metric, time) and the latest value is guarded
# by time, so any gateway may store any of them; a shared subscription spreads the load.
SHARED_KINDS = (Kind.TELEMETRY,)
SUBSCRIBED_KINDS = SHARED_KINDS + ORDERED_KINDS
_ORDERED_NAMES = frozenset(k.value for k in ORDERED_KINDS)


def partition_of(device_id: str, partitions: int) -> int:
    """The gateway partition owning a device's ordered kinds (stable across processes)."""
    return zlib.crc32(device_id.encode()) % partitions


def partition_from_instance(instance: str) -> int:
    """The trailing number of an instance name (`bench2`, a StatefulSet's `gateway-2`), or 0."""
    m = re.search(r"(\d+)$", instance)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    tenant: str | None = None  # None: every tenant on the broker
    instance: str = "0"  # stable per process: the broker keeps its session by client id
    group: str = "fm-gateway"
    max_batch: int = 2000
    # A batch's first message waits linger_s for company, then, while fewer than min_batch
    # have come, up to max_linger_s in all: a batch costs a fixed ~3 ms of CPU (its eight
    # statements, the stages' queries), and N gateways sharing a stream each see 1/N of
    # it, so a wait by time alone made their batches N times smaller and that fixed cost
    # N times larger per message. Counting as well keeps batches the same size as long
    # as a gateway's share fills min_batch within max_linger_s.
    linger_s: float = 0.02
    min_batch: int = 200
    max_linger_s: float = 0.06
    read_coalesce_s: float = 0.005  # gateway.mqttio: one socket read per ~5 ms, not per message
    queue_max: int = 20_000
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000
    device_rate_per_s: float = DEFAULT_RATE_PER_S  # per-device token bucket (gateway.rateguard)
    device_burst: float = DEFAULT_BURST
    max_write_attempts: int = 2  # a message failing alone this often is dead-lettered
    # Ordered kinds (ORDERED_KINDS): gateways whose partition is in 0..partitions-1 each
    # subscribe to them without sharing and keep the devices that hash to their partition
    # (the others are acknowledged unread: their owner's session has them too, and they
    # are never receipted here, so a device sends them again if no owner stores them).
    # A gateway outside that range carries only the shared kinds.
    partition: int = 0
    partitions: int = 1
    drain_s: float = 1.0  # a graceful stop waits this long without a new message (see stop)

    @property
    def owns_ordered(self) -> bool:
        return 0 <= self.partition < self.partitions


class Gateway:
    def __init__(
        self,
        settings: Settings,
        config: GatewayConfig,
        *,
        handlers: Sequence[StageHandler] = (),
        verifier: EventVerifier = no_verifier,
        admission: DeviceAdmission | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.writer = BatchWriter(settings.dsn, handlers, verifier, admission)
        self.rate_guard = RateGuard(config.device_rate_per_s, config.device_burst)
        self._queue: queue.Queue[Inbound] = queue.Queue(maxsize=config.queue_max)
        self._stop = threading.Event()
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="gateway-writer", daemon=True
        )
        self._client = self._make_client()
        self.fatal: BaseException | None = None
        self._next_maintenance = 0.0
        self.last_write_ok = True
        self._last_received = 0.0
        self._writing = False

    # ------------------------------------------------------------------ MQTT

    @property
    def client_id(self) -> str:
        return f"{self.config.group}-{self.config.tenant or 'all'}-{self.config.instance}"

    def _make_client(self) -> mqtt.Client:
        c = FastClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        c.read_coalesce_s = self.config.read_coalesce_s
        external = self.settings.mqtt_credentials
        if external is not None:
            c.username_pw_set(*external)
        else:
            c.username_pw_set(self.settings.gateway_user, self._gateway_password())
        _port, ca = client_endpoint(self.settings)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))
        c.max_inflight_messages_set(200)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def _gateway_password(self) -> str:
        from kernel.broker import provision_mqtt_users

        return provision_mqtt_users(self.settings, [self.settings.gateway_user])[0].password

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("gateway: broker refused connection: %s", rc)
            return
        self.metrics.mqtt_connected.set(1)
        cfg = self.config
        shared = [f"$share/{cfg.group}/{device_filter(cfg.tenant, k)}" for k in SHARED_KINDS]
        ordered = [device_filter(cfg.tenant, k) for k in ORDERED_KINDS]
        subs = [(f, 1) for f in shared] + ([(f, 1) for f in ordered] if cfg.owns_ordered else [])
        client.subscribe(subs)
        # A persistent session keeps its subscriptions: drop those of an earlier layout
        # (ordered kinds shared, or owned under another partition count).
        stale = [f"$share/{cfg.group}/{device_filter(cfg.tenant, k)}" for k in ORDERED_KINDS]
        client.unsubscribe(stale + ([] if cfg.owns_ordered else ordered))
        log.info(
            "gateway %s connected, subscribed to %d filters (partition %d of %d%s)",
            self.client_id,
            len(subs),
            cfg.partition,
            cfg.partitions,
            "" if cfg.owns_ordered else ": telemetry only",
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.metrics.mqtt_connected.set(0)
        if not self._stop.is_set():
            log.warning("gateway %s disconnected: %s", self.client_id, rc)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.metrics.received.inc()
        self._last_received = time.monotonic()
        cfg = self.config
        if cfg.partitions > 1:
            parts = msg.topic.split("/", 6)
            if (
                len(parts) > 5
                and parts[5] in _ORDERED_NAMES
                and partition_of(parts[4], cfg.partitions) != cfg.partition
            ):
                self.metrics.other_partition.inc()
                client.ack(msg.mid, msg.qos)  # another gateway's device: its session has it
                return
        # Blocks when the writer falls behind: backpressure onto the socket and the broker.
        self._queue.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time_ns()))

    # ------------------------------------------------------------------ writing

    def _next_batch(self) -> list[Inbound]:
        """Up to max_batch messages: the first one, then whatever arrived within linger_s,
        or longer (up to max_linger_s) while that is fewer than min_batch (GatewayConfig).

        The writer sleeps through the linger and then takes the queue's contents at once,
        instead of waking for every message (a wake-up, a lock and a GIL hand-over each):
        a gateway that keeps up with its share of the stream spent more CPU per message on
        those wake-ups than on storing it, which made N gateways cost more than one."""
        q = self._queue
        cfg = self.config
        try:
            first = q.get(timeout=0.2)
        except queue.Empty:
            return []
        if q.qsize() < cfg.max_batch - 1:
            waited = time.monotonic()
            time.sleep(cfg.linger_s)
            while q.qsize() < cfg.min_batch - 1 and not self._stop.is_set():
                left = cfg.max_linger_s - (time.monotonic() - waited)
                if left <= 0:
                    break
                time.sleep(min(cfg.linger_s / 2, left))
        batch = [first]
        with q.mutex:  # Queue's own lock and conditions, as its get() uses them
            items = q.queue
            n = min(len(items), self.config.max_batch - 1)
            batch.extend(items.popleft() for _ in range(n))
            if n:
                q.not_full.notify(n)
        return batch

    def _maintain(self) -> None:
        """Housekeeping between batches: time partitions ahead of the data."""
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + 6 * 3600
        try:
            with psycopg.connect(self.settings.dsn, autocommit=True) as conn:
                n = ensure_partitions(conn)
            if n:
                log.info("gateway: created %d time partitions ahead", n)
        except psycopg.OperationalError as exc:
            self._next_maintenance = now + 60
            log.warning("gateway: partition maintenance postponed: %s", str(exc).strip()[:200])

    def _write_loop(self) -> None:
        try:
            while not self._stop.is_set() or not self._queue.empty():
                self._maintain()
                batch = self._next_batch()
                self.metrics.queue_depth.set(self._queue.qsize())
                if batch:
                    self._writing = True
                    try:
                        self._process(batch)
                    finally:
                        self._writing = False
        except BaseException as exc:  # the supervisor in run_gateway reports and exits
            log.exception("gateway writer crashed")
            self.fatal = exc

    def _admit(self, batch: list[Inbound]) -> list[Inbound]:
        """The messages within their device's rate; the rest are only counted (and
        acknowledged with the batch): the agent sends them again from its outbox."""
        now_s = time.monotonic()
        allow = self.rate_guard.allow
        admitted = [inb for inb in batch if allow(device_of(inb.topic), now_s)]
        if len(admitted) < len(batch):
            self.metrics.rate_limited.inc(len(batch) - len(admitted))
        return admitted

    def _process(self, batch: list[Inbound]) -> None:
        now_ms = time.time_ns() // 1_000_000
        self.metrics.lag.set(max(0.0, (time.time_ns() - batch[0].received_ns) / 1e9))
        decoded: list[Decoded | Rejected] = [
            decode_inbound(inb, now_ms) for inb in self._admit(batch)
        ]
        job = self.writer.job(decoded, time.monotonic())
        attempt = 0
        started = time.perf_counter()
        while True:
            try:
                # Isolates bad input (split, retry, dead-letter); raises only when the
                # database is away, keeping what was already written in `job`.
                self.writer.write_isolated(job, self.config.max_write_attempts)
                break
            except DatabaseUnavailable as exc:
                # The database is away: keep the batch, acknowledge nothing, retry.
                self.metrics.db_errors.inc()
                self.metrics.db_ok.set(0)
                self.last_write_ok = False
                self.writer.close()
                delay = backoff_delay_s(attempt, base_s=0.2, cap_s=5.0)
                attempt += 1
                log.warning(
                    "gateway: database unavailable (%s); retrying batch of %d in %.1f s",
                    str(exc).strip()[:200],
                    len(batch),
                    delay,
                )
                if self._stop.wait(delay) and attempt > 3:
                    log.warning(
                        "gateway: stopping with %d messages unwritten (the broker keeps them)",
                        len(batch),
                    )
                    return
                started = time.perf_counter()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.db_ok.set(1)
        self.last_write_ok = True
        self._after_commit(batch, job.result)

    def _after_commit(self, batch: list[Inbound], result: WriteResult) -> None:
        m = self.metrics
        m.stored.inc(result.stored_messages)
        m.points.inc(result.stored_points)
        m.duplicates.inc(result.duplicates)
        m.dead_letters.inc(result.dead_letters)
        for reason, n in result.dead_letter_reasons.items():
            m.dead_letter_reasons.labels(reason).inc(n)
        m.poison.inc(result.poison)
        m.batch_splits.inc(result.splits)
        commit_ms = time.time_ns() // 1_000_000
        for t_ms in result.newest_item_ms:
            m.latency.observe(max(0.0, (commit_ms - t_ms) / 1000.0))
        # Every PUBACK and receipt of the batch in one write (gateway.mqttio). Receipts go
        # at QoS 0: a lost one only makes the device send again, which is deduplicated.
        for inb in batch:
            if inb.qos > 1:  # never subscribed above QoS 1; kept correct regardless
                self._client.ack(inb.mid, inb.qos)
        ack_and_publish(
            self._client,
            (inb.mid for inb in batch if inb.qos == 1),
            (
                (
                    str(Topic(tenant, device_id, Kind.RECEIPT)),
                    encode(Receipt(v=SCHEMA_VERSION, seqs=sorted(set(seqs)))),
                )
                for (tenant, device_id), seqs in result.receipts.items()
            ),
        )
        m.last_commit.set(time.time())

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        self._writer_thread.start()
        port, _ca = client_endpoint(self.settings)
        self._client.connect_async(
            self.settings.mqtt_host,
            port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the shared subscription, write what was received, then disconnect.

        Mosquitto keeps a share of a shared subscription's messages for a member that is
        offline (until its session expires), so a gateway that stopped for good -- a
        scale-down -- would strand its share. A graceful stop therefore unsubscribes from
        the shared kinds first (the others get every new message from then on) and drains
        what the broker had already routed here (`drain_s` with nothing new, bounded by
        `timeout_s`); a restarted gateway subscribes again. Ordered kinds stay subscribed:
        a partition's messages must wait for its owner. A crash (SIGKILL) keeps both, and
        the restarted gateway resumes its session."""
        deadline = time.monotonic() + timeout_s
        if self._client.is_connected():
            cfg = self.config
            self._client.unsubscribe(
                [f"$share/{cfg.group}/{device_filter(cfg.tenant, k)}" for k in SHARED_KINDS]
            )
            while time.monotonic() < deadline and self._writer_thread.is_alive():
                quiet = time.monotonic() - self._last_received >= self.config.drain_s
                if quiet and self._queue.empty() and not self._writing:
                    break
                time.sleep(0.05)
        self._stop.set()
        self._writer_thread.join(timeout=timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        self.writer.close()

    def healthy(self) -> dict[str, Any]:
        return {
            "mqtt_connected": self._client.is_connected(),
            "db_ok": self.last_write_ok,
            "queue_depth": self._queue.qsize(),
            "writer_alive": self._writer_thread.is_alive(),
        }
