"""The embedded services' processes: one per state dir, and `down` leaves none behind.

A second `up` on the same state dir with other ports (a `fieldmesh run` given the state
dir but not every port, as tests/fieldmesh/test_run.py once did) started a second Radicale
and a second Mosquitto that overwrote the first one's pid file: `down` then stopped the
second and the first ran on after its state dir was removed, one per test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldmesh import procs, services, svc_caldav, svc_mail, svc_sms
from kernel.settings import Settings
from tests.ports import service_ports


@pytest.fixture
def state() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fm-procs-"))
    path.chmod(0o755)  # as root, Dovecot runs as `dovecot`, which must reach it
    try:
        yield path
    finally:
        # whatever the test did, nothing of this state dir may outlive it
        for pid in procs.pids_mentioning(str(path)):
            procs.stop_group(pid)
        shutil.rmtree(path, ignore_errors=True)


def _settings(state: Path) -> Settings:
    return Settings(state_dir=state, tenant="procs").with_overrides(**service_ports())


def _radicales(state: Path) -> list[int]:
    conf = str(state / "caldav" / "radicale.conf")
    return [p for p in procs.pids_mentioning(conf) if "radicale" in procs.cmdline(p)]


def _brokers(state: Path) -> list[int]:
    conf = str(state / "mqtt" / "mosquitto.conf")
    return [p for p in procs.pids_mentioning(conf) if "mosquitto" in procs.cmdline(p)]


def test_a_second_start_with_other_ports_keeps_the_one_radicale(state: Path) -> None:
    first = _settings(state)
    svc_caldav.start(first)
    assert len(_radicales(state)) == 1
    other = first.with_overrides(**service_ports())  # same state dir, other ports
    svc_caldav.start(other)
    assert len(_radicales(state)) == 1
    assert svc_caldav.running(other)  # the state dir's server runs (on its own port)
    svc_caldav.stop(other)
    assert _radicales(state) == []


def test_starts_racing_on_one_state_dir_start_one_radicale(state: Path) -> None:
    settings = _settings(state)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            svc_caldav.start(settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_radicales(state)) == 1
    svc_caldav.stop(settings)
    assert _radicales(state) == []


def test_down_stops_a_radicale_whose_pid_file_names_another_process(state: Path) -> None:
    settings = _settings(state)
    svc_caldav.start(settings)
    # what an overwritten pid file left: it names some other live process
    other = subprocess.Popen(["sleep", "600"])
    try:
        (state / "caldav" / "radicale.pid").write_text(f"{other.pid}\n")
        svc_caldav.stop(settings)
        assert _radicales(state) == []
        assert other.poll() is None  # not ours: left alone
    finally:
        other.kill()
        other.wait()


def test_a_second_up_with_another_mqtt_port_keeps_the_one_broker(state: Path) -> None:
    first = _settings(state)
    services.mqtt_start(first)
    assert len(_brokers(state)) == 1
    other = first.with_overrides(**service_ports())
    services.mqtt_start(other)
    assert len(_brokers(state)) == 1
    services.mqtt_stop(other)
    assert _brokers(state) == []


def _programs(state: Path, *names: str) -> dict[str, int]:
    """How many processes of each program run files of this state dir."""
    found = [procs.cmdline(p) for p in procs.pids_mentioning(str(state))]
    return {name: sum(name in cmd for cmd in found) for name in names}


def test_a_second_mail_start_with_other_ports_keeps_one_dovecot_and_relay(state: Path) -> None:
    first = _settings(state)
    svc_mail.start(first)
    assert svc_mail.dovecot_running(first) and svc_mail.relay_running(first)
    before = _programs(state, "dovecot -c", "mail_relay")
    assert before == {"dovecot -c": 1, "mail_relay": 1}
    other = first.with_overrides(**service_ports())
    svc_mail.start(other)
    assert _programs(state, "dovecot -c", "mail_relay") == before
    svc_mail.stop(other)
    assert procs.pids_mentioning(str(state)) == []


def test_a_second_sms_start_with_other_ports_keeps_one_kannel(state: Path) -> None:
    first = _settings(state)
    svc_sms.start(first)
    names = ("bearerbox", "smsbox", "fakesmsc")
    assert _programs(state, *names) == dict.fromkeys(names, 1)
    other = first.with_overrides(**service_ports())
    svc_sms.start(other)
    assert _programs(state, *names) == dict.fromkeys(names, 1)
    svc_sms.stop(other)
    assert procs.pids_mentioning(str(state)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="Dovecot runs as `dovecot` only when we are root")
def test_mail_starts_in_a_state_dir_the_dovecot_user_cannot_enter() -> None:
    """A clone under a private home (/root is mode 700 on Debian): `make demo` failed at
    Dovecot, which runs as `dovecot` and could not read its configuration there. The mail
    dir now lives under /var/lib/fieldmesh with a symlink, and what a failed start left
    in the state dir is moved over."""
    home = Path(tempfile.mkdtemp(prefix="fm-private-"))  # mode 700, like /root
    state = home / "clone" / ".state"
    left = state / "mail" / "users"
    left.parent.mkdir(parents=True)
    left.write_text("")
    settings = _settings(state)
    target: Path | None = None
    try:
        svc_mail.start(settings)
        link = state / "mail"
        assert link.is_symlink()
        target = link.resolve()
        assert target.parent.parent == Path("/var/lib/fieldmesh") and (target / "users").exists()
        assert svc_mail.dovecot_running(settings)
        assert procs.port_open(settings.imap_port)
        svc_mail.stop(settings)
        assert not svc_mail.dovecot_running(settings)
    finally:
        for path in (str(state), str(target)):
            for pid in procs.pids_mentioning(path):
                procs.stop_group(pid)
        shutil.rmtree(home, ignore_errors=True)
        if target is not None:
            shutil.rmtree(target.parent, ignore_errors=True)
