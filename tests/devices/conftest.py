"""Real-path devices for the devices tests: enrolled over HTTP, run by the real edge agent
against the session's broker, with a gateway subprocess storing what they send."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.__main__ import build_agent
from edge_agent.agent import EdgeAgent
from edge_agent.enrol import Enrolment, enrol
from firmware_sim.ota import sim_boot
from kernel.settings import Settings
from ledger.verify import b64url_encode
from tests.appserver import DEFAULT_JOB_MODULES, serve_app
from tests.gateway.harness import GatewayProcess
from tests.world import Api, People


@pytest.fixture(scope="package")
def devices_settings(test_settings: Settings) -> Settings:
    """A tenant of the devices tests' own: the gateway's persistent shared-subscription
    session outlives it in the broker, and must take no other test's messages."""
    return test_settings.with_overrides(tenant=f"dv{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="package")
def app_url(devices_settings: Settings) -> Iterator[str]:
    """The whole app, enrolling devices into this package's tenant, with the job worker
    running the devices' periodic rollout job beside it."""
    with serve_app(devices_settings, job_modules=(*DEFAULT_JOB_MODULES, "devices.jobs")) as url:
        yield url


@pytest.fixture(scope="package")
def gateway(
    devices_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    gw = GatewayProcess(devices_settings, devices_settings.tenant, "devices", log_path=log)
    gw.start()
    yield gw
    gw.stop()


@dataclass
class RunningDevice:
    device_id: str
    directory: Path
    enrolment: Enrolment
    agent: EdgeAgent
    stop: threading.Event
    thread: threading.Thread


@pytest.fixture
def devices_started() -> Iterator[list[RunningDevice]]:
    started: list[RunningDevice] = []
    yield started
    for d in started:
        d.stop.set()
    for d in started:
        d.thread.join(15)


StartDevice = Callable[..., RunningDevice]


@pytest.fixture
def start_device(app_url: str, tmp_path: Path, devices_started: list[RunningDevice]) -> StartDevice:
    def start(
        token: str,
        device_id: str,
        model: str,
        factory_version: str = "1.0.0",
        directory_suffix: str = "",
    ) -> RunningDevice:
        directory = tmp_path / f"{device_id}{directory_suffix}"
        got = enrol(app_url, token, device_id, directory, equipment_model=model)
        agent = build_agent(directory, model, factory_version, boot=sim_boot(model))
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        dev = RunningDevice(device_id, directory, got, agent, stop, thread)
        devices_started.append(dev)
        return dev

    return start


def new_token(api: Api, **body: object) -> str:
    r = api.post("/enrolment-tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def admin(app_url: str, people: People) -> Api:
    return people.api(app_url, "admin")


@dataclass(frozen=True)
class ReleaseKeyPair:
    key_id: str
    private: Ed25519PrivateKey

    @property
    def public_b64(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b64url_encode(raw)


@pytest.fixture(scope="package")
def release_key(app_url: str, people: People) -> ReleaseKeyPair:
    pair = ReleaseKeyPair(f"rel-{uuid.uuid4().hex[:8]}", Ed25519PrivateKey.generate())
    r = people.api(app_url, "admin").post(
        "/release-keys", json={"key_id": pair.key_id, "public_key": pair.public_b64}
    )
    assert r.status_code == 201, r.text
    return pair
