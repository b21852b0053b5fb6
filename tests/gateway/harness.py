"""Runs the real gateway as a subprocess (through the CLI) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kernel.settings import PROJECT_ROOT, Settings
from tests.ports import free_port


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a `fieldmesh` subprocess using these settings' services: its
    state dir with every embedded service's port (given the state dir alone, its `up`
    found the session's services on other ports and started second ones)."""
    env = dict(os.environ)
    env.update(
        FIELDMESH_STATE_DIR=str(settings.state_dir),
        FIELDMESH_PG_PORT=str(settings.pg_port),
        FIELDMESH_MQTT_PORT=str(settings.mqtt_port),
        FIELDMESH_MQTT_WS_PORT=str(settings.mqtt_ws_listen_port),
        FIELDMESH_CALDAV_PORT=str(settings.caldav_port),
        FIELDMESH_SMTP_PORT=str(settings.smtp_port),
        FIELDMESH_IMAP_PORT=str(settings.imap_port),
        FIELDMESH_SMS_PORT=str(settings.sms_port),
        DATABASE_URL=settings.dsn,
    )
    return env


@dataclass
class GatewayProcess:
    settings: Settings
    tenant: str
    instance: str = "0"
    log_path: Path | None = None
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more `fieldmesh gateway` options

    def start(self) -> GatewayProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fieldmesh",
                "-v",
                "gateway",
                "--tenant",
                self.tenant,
                "--instance",
                self.instance,
                "--http-port",
                str(self.http_port),
                *self.extra_args,
            ],
            env=settings_env(self.settings),
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, "gateway exited"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.http_port}/health", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("gateway did not become healthy")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class StoredCounts:
    samples: int
    distinct_samples: int
    fixes: int
    distinct_fixes: int


def stored_counts(dsn: str, tenant: str) -> StoredCounts:
    """Rows stored for a tenant's devices (device ids start with the tenant)."""
    like = f"{tenant}-%"
    with psycopg.connect(dsn) as conn:
        s = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, time, metric)) FROM telemetry_sample WHERE device_id LIKE %s",
            (like,),
        ).fetchone()
        g = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, time)) FROM gps_fix WHERE device_id LIKE %s",
            (like,),
        ).fetchone()
    assert s is not None and g is not None
    return StoredCounts(s[0], s[1], g[0], g[1])
