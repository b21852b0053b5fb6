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
import threading
import time
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

SUBSCRIBED_KINDS = (Kind.TELEMETRY, Kind.GPS, Kind.EVENT, Kind.STATUS, Kind.ACK)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    tenant: str | None = None  # None: every tenant on the broker
    instance: str = "0"  # stable per process: the broker keeps its session by client id
    group: str = "fm-gateway"
    max_batch: int = 2000
    linger_s: float = 0.02
    queue_max: int = 20_000
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000
    device_rate_per_s: float = DEFAULT_RATE_PER_S  # per-device token bucket (gateway.rateguard)
    device_burst: float = DEFAULT_BURST
    max_write_attempts: int = 2  # a message failing alone this often is dead-lettered


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

    # ------------------------------------------------------------------ MQTT

    @property
    def client_id(self) -> str:
        return f"{self.config.group}-{self.config.tenant or 'all'}-{self.config.instance}"

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
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
        subs = [
            (f"$share/{self.config.group}/{device_filter(self.config.tenant, k)}", 1)
            for k in SUBSCRIBED_KINDS
        ]
        client.subscribe(subs)
        log.info("gateway %s connected, subscribed to %d filters", self.client_id, len(subs))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.metrics.mqtt_connected.set(0)
        if not self._stop.is_set():
            log.warning("gateway %s disconnected: %s", self.client_id, rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.metrics.received.inc()
        # Blocks when the writer falls behind: backpressure onto the socket and the broker.
        self._queue.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time_ns()))

    # ------------------------------------------------------------------ writing

    def _next_batch(self) -> list[Inbound]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.linger_s
        while len(batch) < self.config.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
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
                    self._process(batch)
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
        for inb in batch:
            if inb.qos > 0:
                self._client.ack(inb.mid, inb.qos)
        for (tenant, device_id), seqs in result.receipts.items():
            topic = str(Topic(tenant, device_id, Kind.RECEIPT))
            self._client.publish(
                topic, encode(Receipt(v=SCHEMA_VERSION, seqs=sorted(set(seqs)))), qos=1
            )

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
        """Stop taking messages, write what was received, then disconnect."""
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
