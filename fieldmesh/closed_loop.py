"""The closed loop wired together: the urgent-work-order dispatcher with an MQTT command
sender, and a view of how far one failing device's loop has come.

    alert raised -> work order opened -> plan changed -> route on the phone (its ack)
    -> checked in by geofence -> visit logged -> work order done

The dispatcher (crm_sync.dispatch) runs in a thread of the process that owns the clock
(the demo, or a test); it sends `route` commands with the gateway's broker account, which
is the one allowed to write commands.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from crm_sync.dispatch import Dispatched, run_dispatcher
from firmware_sim.navigation import ROUTE_COMMAND
from kernel.broker import device_password
from kernel.settings import Settings
from telemetry.contracts import SCHEMA_VERSION, Command, Kind, Topic, encode

log = logging.getLogger(__name__)


class CommandSender:
    """Publishes commands to devices at QoS 1 (waits for the broker's PUBACK)."""

    def __init__(self, settings: Settings, tenant: str, timeout_s: float = 10.0) -> None:
        self.tenant = tenant
        self.timeout_s = timeout_s
        self.sent: list[tuple[str, str, dict[str, Any]]] = []  # device, command id, args
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"fm-dispatch-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        creds = settings.mqtt_credentials or (
            settings.gateway_user,
            device_password(settings, settings.gateway_user),
        )
        self._client.username_pw_set(*creds)
        self._settings = settings

    def __enter__(self) -> CommandSender:
        self._client.connect(self._settings.mqtt_host, self._settings.mqtt_broker_port)
        self._client.loop_start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, device_id: str, name: str, args: dict[str, Any]) -> str:
        command_id = uuid.uuid4().hex
        topic = str(Topic(self.tenant, device_id, Kind.CMD, name))
        payload = encode(
            Command(v=SCHEMA_VERSION, id=command_id, t=time.time_ns() // 1_000_000, args=args)
        )
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=self.timeout_s)
        if not info.is_published():
            raise ConnectionError(f"command {name} to {device_id}: the broker did not take it")
        self.sent.append((device_id, command_id, args))
        return command_id

    def send_route(self, device_id: str, args: dict[str, Any]) -> None:
        self.send(device_id, ROUTE_COMMAND, args)


@dataclass(slots=True)
class Dispatcher:
    """The dispatcher thread: re-plans urgent work orders, sends routes to the phones."""

    settings: Settings
    tenant: str
    clock_s: Callable[[], float]
    cpu_s: float = 1.0
    dispatched: list[Dispatched] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sender: CommandSender | None = None

    def start(self) -> Dispatcher:
        self._sender = CommandSender(self.settings, self.tenant).__enter__()
        sender = self._sender
        self._thread = threading.Thread(
            target=run_dispatcher,
            args=(self.settings.dsn, sender.send_route, self._stop),
            kwargs={
                "clock_s": self.clock_s,
                "on_dispatch": self.dispatched.append,
                "cpu_s": self.cpu_s,
            },
            name="dispatcher",
            daemon=True,
        )
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._sender is not None:
            self._sender.__exit__(None, None, None)


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    at: datetime | None  # device-side steps: when it happened, in the devices' (simulated) time
    text: str
    work_order_id: int | None = None


def loop_steps(
    conn: psycopg.Connection[Any], device_id: str, after_visit_id: int = 0
) -> list[Step]:
    """The steps of the loop started by the first alert of `device_id` so far, in order.

    Visits with ids up to `after_visit_id` belong to earlier runs and are not looked at.
    """
    steps: list[Step] = []
    alert = conn.execute(
        "SELECT alert_id, alert_type, severity, raised_at, message FROM alerts"
        " WHERE device_id = %s ORDER BY raised_at LIMIT 1",
        (device_id,),
    ).fetchone()
    if alert is None:
        return steps
    alert_id, alert_type, severity, raised_at, message = alert
    steps.append(
        Step("alert", raised_at, f"{severity} alert {alert_type} on {device_id}: {message}")
    )
    wo = conn.execute(
        """SELECT w.id, w.priority, w.status, w.assignee_id, w.account_id, a.name, w.created_at
           FROM work_orders w JOIN accounts a ON a.id = w.account_id
           WHERE w.source = 'alert' AND w.source_ref = %s""",
        (f"alert:{alert_id}",),
    ).fetchone()
    if wo is None:
        return steps
    wo_id, priority, status, rep_id, account_id, account_name, _created = wo
    steps.append(
        Step(
            "work_order",
            None,  # stamped by the database's clock, not the devices' simulated one
            f"work order #{wo_id} ({priority}) on {account_name}, assigned to rep {rep_id}",
        )
    )
    planned = conn.execute(
        "SELECT p.id, p.created_at FROM routing_plans p JOIN routing_stops s ON s.plan_id = p.id"
        " WHERE s.visit_key = %s AND p.status = 'ready' ORDER BY p.id LIMIT 1",
        (f"wo:{wo_id}",),
    ).fetchone()
    if planned is None:
        return steps
    phone = conn.execute(
        "SELECT device_id FROM geo_device_rep WHERE user_id = %s", (rep_id,)
    ).fetchone()
    steps.append(
        Step(
            "plan",
            None,
            f"plan {planned[0]}: work order #{wo_id} in rep {rep_id}'s "
            f"day (phone {phone[0] if phone else '-'})",
            wo_id,
        )
    )
    if phone is None:
        return steps
    ack = conn.execute(
        "SELECT time, detail FROM command_ack WHERE device_id = %s AND name = %s AND ok"
        " AND detail LIKE %s ORDER BY time LIMIT 1",
        (phone[0], ROUTE_COMMAND, f"plan {planned[0]}:%"),
    ).fetchone()
    if ack is None:
        return steps
    steps.append(Step("en_route", ack[0], f"phone {phone[0]} took the route: {ack[1]}"))
    visit = conn.execute(
        "SELECT id, checked_in_at, departed_at, status, activity_id FROM visits"
        " WHERE account_id = %s AND rep_id = %s AND id > %s"
        " AND arrived_at >= %s - interval '1 minute' ORDER BY arrived_at LIMIT 1",
        (account_id, rep_id, after_visit_id, ack[0]),
    ).fetchone()
    if visit is None:
        return steps
    visit_id, checked_in, departed, vstatus, activity_id = visit
    steps.append(Step("check_in", checked_in, f"checked in at {account_name} (visit {visit_id})"))
    if vstatus != "completed" or activity_id is None:
        return steps
    steps.append(
        Step("visit_logged", departed, f"visit {visit_id} logged as activity {activity_id}")
    )
    if status == "done":
        done = conn.execute(
            "SELECT completed_at FROM work_orders WHERE id = %s", (wo_id,)
        ).fetchone()
        steps.append(Step("done", done[0] if done else None, f"work order #{wo_id} done"))
    return steps
