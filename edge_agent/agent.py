"""The edge agent: samples its sources, stores every message in the outbox, publishes at
QoS 1 with a small in-flight window, and forgets a message only once the gateway's receipt
says it is stored.

One thread drives one agent: the paho network loop, sampling and publishing all happen in
`run`, so outbox and client are never touched concurrently. Reconnects use capped
exponential backoff with full jitter.
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.backoff import backoff_delay_s
from edge_agent.ota import OtaError, Updater
from edge_agent.outbox import Outbox
from edge_agent.sources import EventSource, GpsSource, SensorSource
from telemetry.contracts import (
    SCHEMA_VERSION,
    Command,
    CommandAck,
    EventBatch,
    FieldEvent,
    Fix,
    GpsBatch,
    Kind,
    Receipt,
    Sample,
    Status,
    TelemetryBatch,
    Topic,
    encode,
)

log = logging.getLogger(__name__)

Clock = Callable[[], int]  # epoch milliseconds, UTC
Signer = Callable[[str, str, int, str, dict[str, Any]], str]  # device, id, t, type, data -> sig
# A command handler registered by the device's firmware: args -> (ok, detail). It runs in
# the agent's thread, between sampling turns, so it may change the agent's sources.
CommandHandler = Callable[[dict[str, Any]], tuple[bool, str]]

_NOT_AUTHORIZED = 0x87
_BUILTIN_COMMANDS = frozenset({"ping", "config", "ota", "reboot"})


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    tenant: str
    username: str
    password: str
    outbox_path: Path
    host: str = "127.0.0.1"
    port: int = 1883
    tls_ca_file: Path | None = None  # connect with TLS, trusting this CA (e.g. the project's)
    batch_max_items: int = 100
    batch_max_age_s: float = 2.0
    inflight_window: int = 20
    receipt_timeout_s: float = 15.0
    keepalive_s: int = 30
    connack_timeout_s: float = 15.0
    loop_timeout_s: float = 0.05
    outbox_max_messages: int = 200_000
    session_expiry_s: int = 7 * 24 * 3600
    firmware: str = "fieldmesh-sim/1.0"


@dataclass(slots=True)
class AgentCounters:
    published: int = 0
    confirmed: int = 0
    refused: int = 0
    republished: int = 0
    connects: int = 0
    commands: int = 0
    samples: int = 0  # items stored in the outbox, by kind
    fixes: int = 0
    events: int = 0


@dataclass(slots=True)
class _Batch:
    items: list[Any] = field(default_factory=list)
    opened_at: float = 0.0


class EdgeAgent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        sensors: list[SensorSource] | None = None,
        gps: GpsSource | None = None,
        events: EventSource | None = None,
        clock: Clock = wall_clock_ms,
        signer: Signer | None = None,
        rng: random.Random | None = None,
        updater: Updater | None = None,
    ) -> None:
        self.config = config
        self.updater = updater  # None: the device takes no firmware updates
        self.sensors = sensors or []
        self.gps = gps
        self.events = events
        self.clock = clock
        self.signer = signer
        self.rng = rng or random.Random()
        self.outbox = Outbox(config.outbox_path, config.outbox_max_messages)
        self.counters = AgentCounters()
        self.firmware = updater.version if updater is not None else config.firmware
        self._samples = _Batch()
        self._fixes = _Batch()
        self._events: list[FieldEvent] = []
        self._mid_to_seq: dict[int, int] = {}
        self._seen_commands: OrderedDict[str, None] = OrderedDict()
        self._handlers: dict[str, CommandHandler] = {}
        self._connected = False
        self._attempt = 0
        self._next_connect_at = 0.0
        self._last_requeue = 0.0
        self._paused_until = 0.0
        self.sampling = True  # False: stop sampling, keep publishing what is stored
        self.flushed = threading.Event()  # set once everything sampled is in the outbox
        self._offline_until = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the event list, which other threads append to
        self._client = self._make_client()

    # ------------------------------------------------------------------ topics

    def _topic(self, kind: Kind, name: str | None = None) -> str:
        return str(Topic(self.config.tenant, self.config.device_id, kind, name))

    # ------------------------------------------------------------------ client

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.device_id,  # the broker binds the account to it
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        c.username_pw_set(self.config.username, self.config.password)
        if self.config.tls_ca_file is not None:
            c.tls_set(ca_certs=str(self.config.tls_ca_file))
        c.max_inflight_messages_set(self.config.inflight_window)
        c.will_set(
            self._topic(Kind.STATUS),
            encode(Status(v=SCHEMA_VERSION, online=False, t=self.clock(), fw=self.firmware)),
            qos=1,
            retain=True,
        )
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    def _try_connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        props.SessionExpiryInterval = self.config.session_expiry_s
        try:
            self._client.connect(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=False,
                properties=props,
            )
        except OSError as exc:
            delay = backoff_delay_s(self._attempt, rng=self.rng)
            log.info(
                "device %s: connect failed (%s), retry in %.1f s", self.config.device_id, exc, delay
            )
            self._attempt += 1
            self._next_connect_at = time.monotonic() + delay
            return
        # CONNECT is on its way: give the broker time to answer before trying again. A
        # retry with the same client id would make the broker drop this connection, and
        # on a busy broker that turns into a reconnect loop.
        self._next_connect_at = time.monotonic() + self.config.connack_timeout_s

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("device %s: broker refused connection: %s", self.config.device_id, rc)
            self._schedule_reconnect()
            return
        self._connected = True
        self._attempt = 0
        self.counters.connects += 1
        cmd_filter = self._topic(Kind.STATUS).rsplit("/", 1)[0] + "/cmd/+"
        client.subscribe([(cmd_filter, 1), (self._topic(Kind.RECEIPT), 1)])
        client.publish(
            self._topic(Kind.STATUS),
            encode(Status(v=SCHEMA_VERSION, online=True, t=self.clock(), fw=self.firmware)),
            qos=1,
            retain=True,
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if self._connected:
            log.info("device %s: disconnected (%s)", self.config.device_id, rc)
        self._connected = False
        self._mid_to_seq.clear()
        self.outbox.requeue_inflight()
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._connected = False
        delay = backoff_delay_s(self._attempt, rng=self.rng)
        self._attempt += 1
        self._next_connect_at = max(self._next_connect_at, time.monotonic() + delay)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        seq = self._mid_to_seq.pop(mid, None)
        if seq is None:
            return  # status publishes, or a PUBACK from before a reconnect
        if rc.is_failure:
            if rc.value == _NOT_AUTHORIZED:
                # The broker will never take it; keeping it would block nothing but waste
                # the outbox, so drop it loudly.
                log.error(
                    "device %s: broker refused seq %d: not authorized", self.config.device_id, seq
                )
                self.counters.refused += 1
                self.outbox.confirm([seq])
            else:
                self.outbox.mark_pending([seq])
            return
        self.outbox.mark_sent(seq, time.monotonic())
        self.counters.published += 1

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = Topic.parse(msg.topic)
        except ValueError:
            log.warning(
                "device %s: message on unexpected topic %s", self.config.device_id, msg.topic
            )
            return
        if topic.kind is Kind.RECEIPT:
            try:
                receipt = msgspec.json.decode(msg.payload, type=Receipt)
            except msgspec.MsgspecError as exc:
                log.warning("device %s: bad receipt: %s", self.config.device_id, exc)
                return
            self.counters.confirmed += self.outbox.confirm(receipt.seqs)
        elif topic.kind is Kind.CMD and topic.name is not None:
            self._handle_command(topic.name, bytes(msg.payload))

    # ------------------------------------------------------------------ commands

    def register_command(self, name: str, handler: CommandHandler) -> None:
        """Handle `cmd/{name}` with `handler` (firmware-specific commands, e.g. a phone's
        `route`); the built-in commands cannot be replaced."""
        if name in _BUILTIN_COMMANDS:
            raise ValueError(f"command {name!r} is built in and cannot be replaced")
        self._handlers[name] = handler

    def _handle_command(self, name: str, payload: bytes) -> None:
        try:
            cmd = msgspec.json.decode(payload, type=Command)
        except msgspec.MsgspecError as exc:
            self._ack(name, "?", ok=False, detail=f"malformed command: {exc}")
            return
        if cmd.id in self._seen_commands:
            return  # redelivered: applied once already
        self._seen_commands[cmd.id] = None
        while len(self._seen_commands) > 1000:
            self._seen_commands.popitem(last=False)
        self.counters.commands += 1
        ok, detail = True, ""
        if name == "ping":
            detail = "pong"
        elif name == "config":
            interval = cmd.args.get("sample_interval_s")
            if not isinstance(interval, int | float) or not 0.1 <= interval <= 86_400:
                ok, detail = (
                    False,
                    "args.sample_interval_s must be a number of seconds in [0.1, 86400]",
                )
            else:
                for s in self.sensors:
                    s.set_interval_s(float(interval))
                if self.gps is not None:
                    self.gps.set_interval_s(float(interval))
                detail = f"sample_interval_s={interval}"
        elif name == "ota":
            ok, detail = self._update(dict(cmd.args))
        elif name == "reboot":
            detail = "rebooting"
            self._paused_until = time.monotonic() + float(cmd.args.get("down_s", 1.0))
        elif name in self._handlers:
            try:
                ok, detail = self._handlers[name](dict(cmd.args))
            except (ValueError, TypeError, KeyError) as exc:  # bad args: a refused command
                ok, detail = False, f"bad {name} command: {exc}"
        else:
            ok, detail = False, f"unknown command {name!r}"
        self._ack(name, cmd.id, ok=ok, detail=detail)
        if name in ("reboot", "ota") and ok:
            if name == "ota":  # the new image boots: away for a moment, back with its version
                self._paused_until = time.monotonic() + 0.5
            self._client.disconnect()

    def _update(self, args: dict[str, Any]) -> tuple[bool, str]:
        """Download, verify, switch and boot a firmware image (edge_agent.ota)."""
        if self.updater is None:
            return False, "this device takes no firmware updates"
        try:
            version = self.updater.apply(args)
        except OtaError as exc:
            log.warning("device %s: ota failed: %s", self.config.device_id, exc)
            return False, str(exc)[:1000]
        self.firmware = version
        return True, f"firmware {version}"

    def _ack(self, name: str, command_id: str, *, ok: bool, detail: str) -> None:
        t = self.clock()
        self.outbox.append(
            "ack",
            self._topic(Kind.ACK, name),
            lambda seq: encode(
                CommandAck(v=SCHEMA_VERSION, seq=seq, id=command_id, ok=ok, t=t, detail=detail)
            ),
        )

    # ------------------------------------------------------------------ recording

    def record_samples(self, samples: list[Sample]) -> None:
        self._add(self._samples, samples, Kind.TELEMETRY)

    def record_fixes(self, fixes: list[Fix]) -> None:
        self._add(self._fixes, fixes, Kind.GPS)

    def record_event(self, type_: str, data: dict[str, Any], t_ms: int | None = None) -> str:
        """Queue a field event (signed when the agent has a key); returns its id."""
        event_id = str(uuid.uuid4())
        t = self.clock() if t_ms is None else t_ms
        sig = self.signer(self.config.device_id, event_id, t, type_, data) if self.signer else None
        with self._lock:
            self._events.append(FieldEvent(id=event_id, t=t, type=type_, data=data, sig=sig))
        return event_id

    def _add(self, batch: _Batch, items: list[Any], kind: Kind) -> None:
        if not items:
            return
        if not batch.items:
            batch.opened_at = time.monotonic()
        batch.items.extend(items)
        while len(batch.items) >= self.config.batch_max_items:
            chunk, batch.items = (
                batch.items[: self.config.batch_max_items],
                batch.items[self.config.batch_max_items :],
            )
            self._store(kind, chunk)
            batch.opened_at = time.monotonic()

    def _store(self, kind: Kind, items: list[Any]) -> None:
        topic = self._topic(kind)
        if kind is Kind.TELEMETRY:
            self.outbox.append(
                "telemetry", topic, lambda seq: encode(TelemetryBatch(SCHEMA_VERSION, seq, items))
            )
            self.counters.samples += len(items)
        elif kind is Kind.GPS:
            self.outbox.append(
                "gps", topic, lambda seq: encode(GpsBatch(SCHEMA_VERSION, seq, items))
            )
            self.counters.fixes += len(items)
        else:
            self.outbox.append(
                "event", topic, lambda seq: encode(EventBatch(SCHEMA_VERSION, seq, items))
            )
            self.counters.events += len(items)

    def flush(self, *, force: bool = False) -> None:
        """Move open batches into the outbox when full, old enough, or forced."""
        now = time.monotonic()
        for batch, kind in ((self._samples, Kind.TELEMETRY), (self._fixes, Kind.GPS)):
            if batch.items and (force or now - batch.opened_at >= self.config.batch_max_age_s):
                items, batch.items = batch.items, []
                self._store(kind, items)
        with self._lock:
            events, self._events = self._events, []
        if events:
            self._store(Kind.EVENT, events)

    # ------------------------------------------------------------------ loop

    def sample(self) -> None:
        now_ms = self.clock()
        for s in self.sensors:
            self.record_samples(s.poll(now_ms))
        if self.gps is not None:
            self.record_fixes(self.gps.poll(now_ms))
        if self.events is not None:
            for t_ms, type_, data in self.events.poll(now_ms):
                self.record_event(type_, data, t_ms)

    def pump(self) -> None:
        """Publish pending messages while the in-flight window has room."""
        if not self._connected:
            return
        room = self.config.inflight_window - len(self._mid_to_seq)
        if room <= 0:
            return
        for row in self.outbox.next_to_send(room):
            info = self._client.publish(row.topic, row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.outbox.mark_pending([row.seq])
                break
            self._mid_to_seq[info.mid] = row.seq

    def step(self) -> None:
        """One turn of the loop: network, sampling, batching, publishing, re-sending."""
        now = time.monotonic()
        if now < self._paused_until:
            time.sleep(self.config.loop_timeout_s)
            return
        if now < self._offline_until:
            if self._client.is_connected():
                self._client.disconnect()
                self._on_disconnect(self._client, None, None, _Rc(mqtt.MQTT_ERR_NO_CONN), None)
        elif (
            not self._connected and now >= self._next_connect_at and not self._client.is_connected()
        ):
            self._try_connect()
        rc = self._network(self.config.loop_timeout_s)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            if self._connected:
                self._on_disconnect(self._client, None, None, _Rc(rc), None)
            time.sleep(self.config.loop_timeout_s)
        if self.sampling:
            self.sample()
            self.flush()
        else:
            self.flush(force=True)
            self.flushed.set()
        self.pump()
        if now - self._last_requeue >= 1.0:
            self._last_requeue = now
            n = self.outbox.requeue_unconfirmed(now - self.config.receipt_timeout_s)
            if n:
                self.counters.republished += n
                log.info(
                    "device %s: %d messages unconfirmed, publishing again", self.config.device_id, n
                )

    def _network(self, timeout_s: float) -> MQTTErrorCode:
        """One turn of paho's network loop, waiting with poll() rather than paho's select():
        a simulator running hundreds of agents holds more than 1,024 descriptors, and
        select() cannot watch those."""
        sock = self._client.socket()
        if sock is None:
            time.sleep(timeout_s)
            return mqtt.MQTT_ERR_NO_CONN
        poller = select.poll()
        mask = select.POLLIN | (select.POLLOUT if self._client.want_write() else 0)
        poller.register(sock, mask)
        ready = poller.poll(int(timeout_s * 1000))
        rc = mqtt.MQTT_ERR_SUCCESS
        if ready and ready[0][1] & (select.POLLIN | select.POLLHUP | select.POLLERR):
            rc = self._client.loop_read()
        if rc == mqtt.MQTT_ERR_SUCCESS and self._client.want_write():
            rc = self._client.loop_write()
        if rc == mqtt.MQTT_ERR_SUCCESS:
            rc = self._client.loop_misc()
        return rc

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # supervisor: a bug in one turn must not kill the device
                    log.exception("device %s: error in agent loop", self.config.device_id)
                    stop.wait(1.0)
        finally:
            self.flush(force=True)
            self._say_offline()
            self._client.disconnect()
            self.outbox.close()

    def _say_offline(self) -> None:
        """A clean stop sends no last will, so announce going offline ourselves."""
        if not self._connected:
            return
        info = self._client.publish(
            self._topic(Kind.STATUS),
            encode(Status(v=SCHEMA_VERSION, online=False, t=self.clock(), fw=self.firmware)),
            qos=1,
            retain=True,
        )
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if self._network(0.05) != mqtt.MQTT_ERR_SUCCESS:
                break

    def drain(self, timeout_s: float) -> bool:
        """Keep running until every stored message is confirmed (or the timeout)."""
        self.flush(force=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.step()
            self.flush(force=True)
            if self.outbox.stats().total == 0:
                return True
        return False

    def go_offline(self, duration_s: float) -> None:
        """Drop the connection and stay away (e.g. no coverage) while still sampling."""
        self._offline_until = time.monotonic() + duration_s

    def stop(self) -> None:
        self._stop.set()


class _Rc:
    """Adapter so a loop() error code looks like a reason code to _on_disconnect."""

    def __init__(self, rc: int) -> None:
        self.value = rc
        self.is_failure = True

    def __str__(self) -> str:
        return mqtt.error_string(self.value)
