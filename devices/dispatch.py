"""Commands to devices over MQTT (aiomqtt): the only module of the package that talks MQTT.

A command goes to ``fm/v1/{tenant}/dev/{device}/cmd/{name}`` at QoS 1. Devices keep a
persistent session (clean start off, a week's expiry), so the broker queues a command for
a device that is offline and delivers it when it is back. The platform's tools connect as
the broker's admin account with a client id under the reserved ``fm-dispatch-`` prefix.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt

from kernel.broker import ADMIN_MQTT_USER, client_endpoint, device_password
from kernel.errors import Unavailable
from kernel.settings import Settings
from telemetry.contracts import SCHEMA_VERSION, Command, Kind, Topic, encode


@dataclass(frozen=True, slots=True)
class Outgoing:
    tenant: str
    device_id: str
    name: str
    command: Command


def command(command_id: str, t_ms: int, args: dict[str, object]) -> Command:
    return Command(v=SCHEMA_VERSION, id=command_id, t=t_ms, args=dict(args))


async def publish(
    settings: Settings, messages: Sequence[Outgoing], timeout_s: float = 10.0
) -> None:
    """Publish every command at QoS 1 (each acknowledged by the broker), or raise Unavailable."""
    if not messages:
        return
    port, ca = client_endpoint(settings)
    external = settings.mqtt_credentials
    username, password = (
        external
        if external is not None
        else (ADMIN_MQTT_USER, device_password(settings, ADMIN_MQTT_USER))
    )
    try:
        async with aiomqtt.Client(
            settings.mqtt_host,
            port,
            username=username,
            password=password,
            identifier=f"fm-dispatch-{os.getpid()}-{secrets.token_hex(4)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(ca)) if ca is not None else None,
            timeout=timeout_s,
        ) as client:
            for m in messages:
                topic = str(Topic(m.tenant, m.device_id, Kind.CMD, m.name))
                await client.publish(topic, encode(m.command), qos=1, timeout=timeout_s)
    except aiomqtt.MqttError as exc:
        raise Unavailable(f"the broker did not take the command: {exc}") from exc
