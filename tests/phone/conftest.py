"""The whole app on a loopback port, a gateway for the session's tenant, and a runner of the
phone's headless-Chromium scenarios (tests/phone/phone_e2e.cjs)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldmesh.svc_pushtest import LocalPushService
from kernel.settings import PROJECT_ROOT, Settings, parse_networks
from tests.appserver import serve_app
from tests.gateway.harness import GatewayProcess
from tests.ports import free_port

ARTEFACTS = PROJECT_ROOT / "bench" / "out" / "phone"
DRIVER = Path(__file__).with_name("phone_e2e.cjs")


@pytest.fixture(scope="session")
def phone_settings(test_settings: Settings) -> Settings:
    """The session's settings; Web Push may reach the local push service on loopback."""
    return test_settings.with_overrides(push_allow=parse_networks("127.0.0.1/32,::1/128", "test"))


@pytest.fixture(scope="session")
def phone_app(phone_settings: Settings) -> Iterator[str]:
    """The app with the phone's job tasks beside it (push delivery, the phone's scan)."""
    jobs = ("crm.jobs", "routing.jobs", "notify.jobs", "phone.jobs")
    with serve_app(phone_settings, job_modules=jobs) as url:
        yield url


@pytest.fixture(scope="session")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPushService]:
    log = tmp_path_factory.mktemp("push") / "web-push-testing.log"
    with LocalPushService(free_port(), log) as svc:
        yield svc


@pytest.fixture(scope="session")
def gateway(test_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The real gateway on the deployment's tenant, the one the phones publish to."""
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    gw = GatewayProcess(test_settings, test_settings.tenant, log_path=log).start()
    try:
        yield None
    finally:
        gw.stop()


@pytest.fixture
def run_phone() -> Callable[..., dict[str, Any]]:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def run(name: str, base: str, params: dict[str, Any], timeout_s: float = 400) -> dict[str, Any]:
        proc = subprocess.run(
            ["node", str(DRIVER), name, base, json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(os.environ, FM_SHOTS=str(ARTEFACTS)),
            cwd=PROJECT_ROOT,
            check=False,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        assert proc.returncode == 0 and lines, (
            f"scenario {name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
        out: dict[str, Any] = json.loads(lines[-1])
        return out

    return run
