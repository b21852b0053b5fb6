"""Credentials sealed at rest: round trip, rotation, legacy text, lost keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from kernel import secretbox
from kernel.errors import Unavailable
from kernel.settings import Settings, SettingsError, load_settings


def test_state_key_created_once_private_and_round_trips(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    sealed = secretbox.seal(s, "hunter2")
    assert secretbox.is_sealed(sealed) and "hunter2" not in sealed
    assert secretbox.seal(s, "hunter2") != sealed  # fresh IV: equal secrets do not show
    assert secretbox.open_(s, sealed) == "hunter2"
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    secretbox.seal(s, "x")
    assert key_file.read_text() == key


def test_legacy_plain_text_passes_and_rotation_keeps_old_values(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Settings(state_dir=tmp_path, secret_keys=(old,))
    sealed = secretbox.seal(before, "pw")
    assert secretbox.open_(before, "plain legacy") == "plain legacy"
    after = Settings(state_dir=tmp_path, secret_keys=(new, old))
    assert secretbox.open_(after, sealed) == "pw"
    rotated = secretbox.rotate(after, sealed)
    only_new = Settings(state_dir=tmp_path, secret_keys=(new,))
    assert secretbox.open_(only_new, rotated) == "pw"
    with pytest.raises(Unavailable, match="FIELDMESH_SECRET_KEYS"):
        secretbox.open_(only_new, sealed)


def test_bad_key_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"FIELDMESH_SECRET_KEYS": "not-a-key-secretvalue"})
    assert "FIELDMESH_SECRET_KEYS" in str(err.value)
    assert "secretvalue" not in str(err.value)
    good = Fernet.generate_key().decode()
    assert load_settings({"FIELDMESH_SECRET_KEYS": f" {good} ,"}).secret_keys == (good,)
