"""Broker accounts: who may connect to the embedded Mosquitto, as whom, and to which topics.

Accounts and authorisation live in Mosquitto's dynamic-security plugin alone. In 2.0.11
the plugin's ACL topics take no `%u`/`%c` substitution, and a static `acl_file` cannot
refuse a subscription at all (its check answers every SUBSCRIBE with success and only
filters delivery), so each device gets its own role with literal topics, created with
its account, and `defaultACLAccess` is false for everything:

- a device (username = device id) is bound to client id = device id; it publishes only
  under `fm/v1/+/dev/<id>/{telemetry,gps,event,status,ack/+}` and subscribes to and
  receives only its own `cmd/+` and `receipt`;
- the gateway account reads and writes `fm/v1/#` and is the only account that may join
  a `$share` group on those topics;
- the admin account (tools, provisioning) may use the control API and every plain topic.

Gateway and admin are service accounts used by several processes at once (gateway
instances, provisioning runs), so their client ids are not bound; no device can take
them over because every device account is bound to its own id, and device ids may not
use the service prefixes.

Passwords are derived from a per-deployment master key and a per-account generation
counter: provisioning again returns the same password (nothing is stored in clear),
rotation bumps the generation, and revocation disables the account, which makes the
broker drop the device at once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.settings import Settings

log = logging.getLogger(__name__)

ADMIN_MQTT_USER = "fieldmesh-admin"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
ADMIN_ROLE = "admin"
GATEWAY_ROLE = "gateway"
DEVICE_ROLE_PREFIX = "device:"
# Client ids the platform's own processes use; a device id may not start with them.
RESERVED_PREFIXES = ("fm-gateway", "fm-provision-", "fm-dispatch-", "fm-control-", "fm-bench")
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as on the wire
_DEVICE_WRITES = ("telemetry", "gps", "event", "status", "ack/+")
_DEVICE_READS = ("cmd/+", "receipt")


class BrokerError(RuntimeError):
    """A broker account could not be created, changed or reached."""


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    username: str
    password: str


# --------------------------------------------------------------------------- secrets


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held for the block (between processes and between threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def master_key(settings: Settings) -> bytes:
    """Per-deployment secret from which account passwords are derived."""
    path = _secrets_dir(settings) / "master.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True, slots=True)
class AccountState:
    generation: int = 0  # bumped by every rotation; 0 is the original password
    revoked: bool = False


def _registry_path(settings: Settings) -> Path:
    return _secrets_dir(settings) / "accounts.json"


def _load_registry(settings: Settings) -> dict[str, AccountState]:
    path = _registry_path(settings)
    out: dict[str, AccountState] = {}
    if path.exists():
        for name, st in json.loads(path.read_text()).items():
            out[name] = AccountState(int(st.get("generation", 0)), bool(st.get("revoked", False)))
        return out
    # Versions before rotation listed provisioned devices in mqtt/provisioned.txt.
    legacy = settings.state_dir / "mqtt" / "provisioned.txt"
    if legacy.exists():
        out = {name: AccountState() for name in legacy.read_text().split()}
    return out


def _save_registry(settings: Settings, registry: dict[str, AccountState]) -> None:
    path = _registry_path(settings)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {n: {"generation": s.generation, "revoked": s.revoked} for n, s in registry.items()},
            fh,
            indent=1,
            sort_keys=True,
        )
    os.replace(tmp, path)


def account_state(settings: Settings, username: str) -> AccountState:
    return _load_registry(settings).get(username, AccountState())


def _derive(settings: Settings, username: str, generation: int) -> str:
    # Generation 0 keeps the original derivation so devices provisioned before rotation
    # existed keep their passwords.
    msg = username.encode() if generation == 0 else f"{username}\x00{generation}".encode()
    return hmac.new(master_key(settings), msg, hashlib.sha256).hexdigest()


def device_password(settings: Settings, username: str) -> str:
    """The account's current password (after its latest rotation)."""
    return _derive(settings, username, account_state(settings, username).generation)


def ca_path(settings: Settings) -> Path:
    """The project CA that signs the embedded broker's TLS certificate (`fieldmesh up --tls`)."""
    return settings.state_dir / "tls" / "ca.pem"


def client_endpoint(settings: Settings) -> tuple[int, Path | None]:
    """The broker port a client of the embedded broker uses, and the CA to trust on it.

    With a TLS listener (FIELDMESH_MQTT_TLS_PORT) agents and the gateway use it; otherwise
    the plain loopback listener (or MQTT_URL's port) and no TLS.
    """
    if settings.embedded_mqtt and settings.mqtt_tls_port is not None:
        return settings.mqtt_tls_port, ca_path(settings)
    return settings.mqtt_broker_port, None


def builtin_users(settings: Settings) -> frozenset[str]:
    return frozenset({ADMIN_MQTT_USER, settings.gateway_user})


def check_device_id(settings: Settings, device_id: str) -> None:
    """Raise BrokerError unless `device_id` can be a device account of its own."""
    if not _DEVICE_ID_RE.match(device_id):
        raise BrokerError(f"invalid device id {device_id!r}: expected {_DEVICE_ID_RE.pattern}")
    if device_id in builtin_users(settings) or device_id.startswith(RESERVED_PREFIXES):
        raise BrokerError(f"device id {device_id!r} is reserved for the platform's own clients")


# --------------------------------------------------------------------------- roles


def _acl(acltype: str, topic: str, *, allow: bool = True, priority: int = 0) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": allow, "priority": priority}


def device_role_name(device_id: str) -> str:
    return f"{DEVICE_ROLE_PREFIX}{device_id}"


def device_role(device_id: str) -> dict[str, Any]:
    """Literal topics of one device: the plugin cannot substitute the username (2.0.11)."""
    base = f"fm/v1/+/dev/{device_id}"
    acls = [_acl("publishClientSend", f"{base}/{k}") for k in _DEVICE_WRITES]
    for k in _DEVICE_READS:
        acls += [
            _acl("subscribePattern", f"{base}/{k}"),
            _acl("publishClientReceive", f"{base}/{k}"),
            _acl("unsubscribePattern", f"{base}/{k}"),
        ]
    return {"rolename": device_role_name(device_id), "acls": acls}


def admin_role() -> dict[str, Any]:
    # `#` does not match `$` topics, so the control API is granted explicitly. The
    # gateway's shared groups are denied even to tools: a member takes a share of the
    # messages, which the gateway then never stores.
    control = "$CONTROL/dynamic-security/#"
    return {
        "rolename": ADMIN_ROLE,
        "acls": [
            _acl("subscribePattern", "$share/#", allow=False, priority=10),
            _acl("publishClientSend", control),
            _acl("publishClientReceive", control),
            _acl("subscribePattern", control),
            _acl("publishClientSend", "#"),
            _acl("publishClientReceive", "#"),
            _acl("subscribePattern", "#"),
            _acl("unsubscribePattern", "#"),
        ],
    }


def gateway_role() -> dict[str, Any]:
    return {
        "rolename": GATEWAY_ROLE,
        "acls": [
            _acl("publishClientSend", "fm/v1/#"),
            _acl("publishClientReceive", "fm/v1/#"),
            _acl("subscribePattern", "fm/v1/#"),
            _acl("subscribePattern", "$share/+/fm/v1/#"),
            _acl("unsubscribePattern", "#"),
        ],
    }


DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": False,
}


def _dynsec_hash(password: str) -> dict[str, Any]:
    """The plugin's stored form: PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt, base64."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
    }


def initial_dynsec(settings: Settings) -> dict[str, Any]:
    """The plugin's file for a new broker: the two service accounts and their roles."""
    return normalise_dynsec(
        settings,
        {
            "clients": [
                {
                    "username": ADMIN_MQTT_USER,
                    "textName": "fieldmesh tools and provisioning",
                    **_dynsec_hash(device_password(settings, ADMIN_MQTT_USER)),
                },
                {
                    "username": settings.gateway_user,
                    "textName": "fieldmesh gateway",
                    **_dynsec_hash(device_password(settings, settings.gateway_user)),
                },
            ],
        },
    )


def normalise_dynsec(settings: Settings, doc: dict[str, Any]) -> dict[str, Any]:
    """Bring a plugin file (from any earlier version) to the current model, idempotently.

    Called only while the broker is stopped (the running plugin owns the file): service
    accounts get their roles, every other account becomes a device bound to its client
    id with its own role, and default access is refused. Password hashes are kept.
    """
    roles: dict[str, dict[str, Any]] = {r["rolename"]: r for r in doc.get("roles", [])}
    roles[ADMIN_ROLE] = admin_role()
    roles[GATEWAY_ROLE] = gateway_role()
    clients = []
    for c in doc.get("clients", []):
        c = dict(c)
        name = c["username"]
        if name == ADMIN_MQTT_USER:
            c["roles"] = [{"rolename": ADMIN_ROLE}]
        elif name == settings.gateway_user:
            c["roles"] = [{"rolename": GATEWAY_ROLE}]
        else:
            role = device_role(name)
            roles[role["rolename"]] = role
            c["clientid"] = name
            c["roles"] = [{"rolename": role["rolename"]}]
        c.pop("groups", None)
        clients.append(c)
    return {
        **{k: v for k, v in doc.items() if k not in ("clients", "roles", "groups")},
        "clients": clients,
        "roles": list(roles.values()),
        "groups": [],
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
    }


# --------------------------------------------------------------------------- control API


def control(
    settings: Settings, commands: list[dict[str, Any]], *, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    """Send commands to the running broker's dynamic-security plugin; return its answers.

    Commands go in chunks of 100: the plugin rewrites its whole file after every change,
    so a large fleet takes a while, and what matters is that the broker keeps answering.
    """
    import paho.mqtt.client as mqtt  # the adapter import stays local: the CLI starts without it
    from paho.mqtt.enums import CallbackAPIVersion

    responses: list[dict[str, Any]] = []
    answered = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        responses.extend(json.loads(msg.payload).get("responses", []))
        answered.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"fm-control-{os.getpid()}-{secrets.token_hex(3)}",
    )
    client.username_pw_set(ADMIN_MQTT_USER, device_password(settings, ADMIN_MQTT_USER))
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    try:
        client.connect(settings.mqtt_host, settings.mqtt_broker_port)
    except OSError as exc:
        raise BrokerError(f"cannot reach the broker's control API: {exc}") from exc
    client.loop_start()
    try:
        client.subscribe(f"{CONTROL_TOPIC}/response", qos=1)
        if not subscribed.wait(timeout_s):
            raise BrokerError("the broker did not confirm the control API subscription")
        for i in range(0, len(commands), 100):
            chunk = commands[i : i + 100]
            target = len(responses) + len(chunk)
            answered.clear()
            client.publish(CONTROL_TOPIC, json.dumps({"commands": chunk}), qos=1)
            while len(responses) < target:
                if not answered.wait(timeout_s):
                    raise BrokerError(
                        f"the broker stopped answering control commands ({len(responses)} of {len(commands)})"
                    )
                answered.clear()
    finally:
        # Disconnecting first wakes paho's network thread; stopping it first would wait out
        # its 1 s select timeout, which made every account change take a second.
        client.disconnect()
        client.loop_stop()
    return responses


def _raise_failures(responses: list[dict[str, Any]], tolerated: tuple[str, ...] = ()) -> None:
    failed = [
        r for r in responses if r.get("error") and not any(t in str(r["error"]) for t in tolerated)
    ]
    if failed:
        raise BrokerError(f"the broker refused {failed[0].get('command')}: {failed[0]['error']}")


# --------------------------------------------------------------------------- accounts


def provision_mqtt_users(
    settings: Settings, usernames: Iterable[str], *, timeout_s: float = 20.0
) -> list[MqttCredentials]:
    """Give each device a broker account bound to its client id and its own topics.

    Provisioning again is a no-op that returns the current password. The service accounts
    (admin, gateway) are returned without change. A revoked device is refused: rotate it
    to issue new credentials.
    """
    names = list(usernames)
    builtin = builtin_users(settings)
    for n in names:
        if n not in builtin:
            check_device_id(settings, n)
    if not settings.embedded_mqtt:
        return [MqttCredentials(n, device_password(settings, n)) for n in names]
    with file_lock(_secrets_dir(settings) / "accounts.lock"):
        registry = _load_registry(settings)
        revoked = [n for n in names if n in registry and registry[n].revoked]
        if revoked:
            raise BrokerError(
                f"device {revoked[0]!r} is revoked: `fieldmesh devices rotate` re-issues it"
            )
        new = list(dict.fromkeys(n for n in names if n not in registry and n not in builtin))
        if new:
            commands: list[dict[str, Any]] = []
            for n in new:
                role = device_role(n)
                commands.append({"command": "createRole", **role})
                commands.append(
                    {
                        "command": "createClient",
                        "username": n,
                        "password": _derive(settings, n, 0),
                        "clientid": n,
                        "roles": [{"rolename": role["rolename"]}],
                    }
                )
            _raise_failures(control(settings, commands, timeout_s=timeout_s), ("already exists",))
            for n in new:
                registry[n] = AccountState()
            _save_registry(settings, registry)
        return [
            MqttCredentials(n, _derive(settings, n, registry.get(n, AccountState()).generation))
            for n in names
        ]


def _change_device(settings: Settings, device_id: str, *, revoke: bool) -> AccountState:
    check_device_id(settings, device_id)
    if not settings.embedded_mqtt:
        raise BrokerError("device accounts of an external broker (MQTT_URL) are managed there")
    with file_lock(_secrets_dir(settings) / "accounts.lock"):
        registry = _load_registry(settings)
        if device_id not in registry:
            raise BrokerError(f"device {device_id!r} has no broker account: provision it first")
        st = registry[device_id]
        if revoke:
            # Disabling (not deleting) keeps the id taken, and the broker drops the
            # device's connection at once.
            new = AccountState(st.generation, revoked=True)
            commands = [{"command": "disableClient", "username": device_id}]
        else:
            new = AccountState(st.generation + 1, revoked=False)
            commands = [
                {
                    "command": "setClientPassword",
                    "username": device_id,
                    "password": _derive(settings, device_id, new.generation),
                },
                {"command": "enableClient", "username": device_id},
            ]
        # The registry is written first: were the broker unreachable, provisioning must
        # not hand out the old password again.
        registry[device_id] = new
        _save_registry(settings, registry)
        _raise_failures(control(settings, commands))
        return new


def rotate_device(settings: Settings, device_id: str) -> MqttCredentials:
    """Issue a new password; the old one stops working and a connected device is dropped.

    A revoked device is re-enabled with the new password.
    """
    st = _change_device(settings, device_id, revoke=False)
    log.info("broker: rotated the password of %s (generation %d)", device_id, st.generation)
    return MqttCredentials(device_id, _derive(settings, device_id, st.generation))


def revoke_device(settings: Settings, device_id: str) -> None:
    """Disable the device's account: the broker disconnects it at once and refuses it."""
    _change_device(settings, device_id, revoke=True)
    log.info("broker: revoked %s", device_id)
