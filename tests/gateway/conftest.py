"""Fixtures for the telemetry path: a gateway subprocess, a fleet, private services."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fieldmesh import services
from fieldmesh.migrate import upgrade
from firmware_sim.fleet import Fleet, FleetSpec
from kernel.settings import Settings
from tests.gateway.harness import GatewayProcess
from tests.ports import service_ports


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(
        settings: Settings, tenant: str, instance: str = "0", extra_args: tuple[str, ...] = ()
    ) -> GatewayProcess:
        gw = GatewayProcess(
            settings,
            tenant,
            instance,
            log_path=tmp_path / f"gateway-{instance}.log",
            extra_args=extra_args,
        )
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def make_fleet(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    fleets: list[Fleet] = []

    def make(settings: Settings, tenant: str, **spec: object) -> Fleet:
        fleet = Fleet(settings, FleetSpec(tenant=tenant, **spec), tmp_path / f"fleet-{len(fleets)}")  # type: ignore[arg-type]
        fleet.register(settings.dsn)
        fleets.append(fleet)
        return fleet

    yield make
    for f in fleets:
        f.stop()


@pytest.fixture
def private_services() -> Iterator[Settings]:
    """A PostgreSQL cluster and a broker of this test's own, free to be stopped and killed."""
    state = Path(tempfile.mkdtemp(prefix="fm-private-"))
    state.chmod(0o755)  # as root, the cluster runs as `postgres`, which must reach it
    settings = Settings(state_dir=state, tenant="priv").with_overrides(**service_ports())
    services.ensure_up(settings, migrate=False)
    dsn = services.create_database(settings, f"fm_priv_{uuid.uuid4().hex[:6]}")
    upgrade(dsn)
    yield settings.with_overrides(database_url=dsn)
    services.down(settings)
    shutil.rmtree(state, ignore_errors=True)
