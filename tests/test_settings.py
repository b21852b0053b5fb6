"""Settings: defaults work, bad values are refused naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldmesh.cli import main
from kernel.settings import SettingsError, load_settings


def test_defaults_are_local_and_working() -> None:
    s = load_settings(env={})
    assert s.embedded_db and s.embedded_mqtt
    assert s.dsn == f"postgresql://fieldmesh@127.0.0.1:{s.pg_port}/fieldmesh"


def test_external_services_and_their_credentials() -> None:
    s = load_settings(
        env={
            "DATABASE_URL": "postgresql://u:p@db:5432/x",
            "MQTT_URL": "mqtt://gw:secret@broker:1884",
        }
    )
    assert not s.embedded_db and not s.embedded_mqtt
    assert (s.mqtt_host, s.mqtt_broker_port, s.mqtt_credentials) == (
        "broker",
        1884,
        ("gw", "secret"),
    )
    assert s.dsn_for("other") == "postgresql://u:p@db:5432/other"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FIELDMESH_PG_PORT": "abc"}, "FIELDMESH_PG_PORT"),
        ({"FIELDMESH_MQTT_PORT": "70000"}, "FIELDMESH_MQTT_PORT"),
        ({"FIELDMESH_TENANT": "Bad/Tenant"}, "FIELDMESH_TENANT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"MQTT_URL": "http://x"}, "MQTT_URL"),
    ],
)
def test_bad_setting_names_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env=env)


def test_toml_file_and_unknown_keys(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[fieldmesh]\ntenant = "north"\nhttp_port = 9000\n')
    s = load_settings(env={}, toml_path=good)
    assert (s.tenant, s.http_port) == ("north", 9000)
    bad = tmp_path / "bad.toml"
    bad.write_text('[fieldmesh]\ntennant = "north"\n')
    with pytest.raises(SettingsError, match="tennant"):
        load_settings(env={}, toml_path=bad)


def test_cli_exits_2_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIELDMESH_PG_PORT", "not-a-port")
    assert main(["status"]) == 2
    assert "FIELDMESH_PG_PORT" in capsys.readouterr().err
