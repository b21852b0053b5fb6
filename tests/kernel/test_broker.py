"""Broker accounts as data: roles, the plugin file's upgrade, password generations."""

from __future__ import annotations

from pathlib import Path

from kernel import broker
from kernel.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_a_device_role_names_only_its_own_topics() -> None:
    role = broker.device_role("pump-7")
    assert role["rolename"] == "device:pump-7"
    by_type: dict[str, set[str]] = {}
    for acl in role["acls"]:
        assert acl["allow"] is True
        by_type.setdefault(acl["acltype"], set()).add(acl["topic"])
    base = "fm/v1/+/dev/pump-7"
    assert by_type["publishClientSend"] == {
        f"{base}/{k}" for k in ("telemetry", "gps", "event", "status", "ack/+")
    }
    reads = {f"{base}/cmd/+", f"{base}/receipt"}
    assert by_type["subscribePattern"] == reads
    assert by_type["publishClientReceive"] == reads
    assert by_type["unsubscribePattern"] == reads


def test_an_old_plugin_file_is_normalised_keeping_passwords(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    old = {
        "clients": [
            {"username": broker.ADMIN_MQTT_USER, "password": "a", "roles": [{"rolename": "admin"}]},
            {"username": "gateway", "password": "g", "roles": [{"rolename": "gateway"}]},
            {"username": "dev-1", "password": "d", "salt": "s", "iterations": 101},
        ],
        "roles": [{"rolename": "admin", "acls": []}, {"rolename": "gateway", "acls": []}],
        "defaultACLAccess": {"publishClientReceive": True, "subscribe": False},
    }
    doc = broker.normalise_dynsec(s, old)
    clients = {c["username"]: c for c in doc["clients"]}
    assert clients["dev-1"]["clientid"] == "dev-1"
    assert clients["dev-1"]["roles"] == [{"rolename": "device:dev-1"}]
    assert clients["dev-1"]["password"] == "d"
    assert "clientid" not in clients["gateway"]
    assert doc["defaultACLAccess"] == broker.DEFAULT_ACL_ACCESS
    assert not any(doc["defaultACLAccess"].values())
    roles = {r["rolename"]: r for r in doc["roles"]}
    assert roles["device:dev-1"] == broker.device_role("dev-1")
    assert roles["admin"] == broker.admin_role()
    assert broker.normalise_dynsec(s, doc) == doc  # idempotent


def test_a_generation_changes_the_password_and_generation_zero_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    import hashlib
    import hmac

    s = _settings(tmp_path)
    legacy = hmac.new(broker.master_key(s), b"dev-1", hashlib.sha256).hexdigest()
    assert broker.device_password(s, "dev-1") == legacy
    assert broker._derive(s, "dev-1", 1) not in (legacy, broker._derive(s, "dev-1", 2))
