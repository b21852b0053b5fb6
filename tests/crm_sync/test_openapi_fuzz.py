"""The operations endpoints (crm_sync, alerts, ledger, maintenance) keep to their generated
OpenAPI document: schemathesis drives the live app with schema-valid and schema-invalid
requests; no input yields a 5xx, every answer matches its declared schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from fieldmesh import services
from fieldmesh.migrate import upgrade
from identity import auth
from kernel.settings import Settings
from tests.appserver import serve_app

pytestmark = pytest.mark.integration

MODULES = (
    "crm_sync.routes",
    "alerts.routes",
    "ledger.routes",
    "insights.maintenance.routes",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_PER_OPERATION = 6


async def _admin_token(dsn: str) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        uid = await auth.create_user(
            conn, email=f"fuzz-{uuid.uuid4().hex[:6]}@x.test", name="Fuzz", role="admin"
        )
        _, token = await auth.issue_token(conn, uid, "fuzz")
        await conn.commit()
        return token


@pytest.fixture(scope="module")
def fuzz_app(
    services_up: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A database of its own: random writes do not disturb the other tests' records."""
    name = f"fm_ops_fuzz_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        token = asyncio.run(_admin_token(dsn))
        app_settings = services_up.with_overrides(
            database_url=dsn, state_dir=tmp_path_factory.mktemp("fuzz-state")
        )
        with serve_app(app_settings, MODULES) as url:
            yield url, token
    finally:
        services.drop_database(services_up, name)


def test_operations_api_conforms_to_its_openapi_document(fuzz_app: tuple[str, str]) -> None:
    url, token = fuzz_app
    schema = schemathesis.openapi.from_url(url + "/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong without inputs
            except BaseException as exc:  # collect every operation's failure
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"[:2000]
                )
    assert operations >= 17, operations
    assert not failures, "\n\n".join(failures)
