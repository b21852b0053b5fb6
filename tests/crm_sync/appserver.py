"""The real app with chosen route modules, on a free loopback port, in its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kernel.settings import Settings
from tests.appserver import serve_app as shared_serve_app


@contextmanager
def serve_app(
    settings: Settings, route_modules: tuple[str, ...] = ("crm_sync.routes",)
) -> Iterator[str]:
    """The real app on a free loopback port, with the job worker delivering webhooks (as
    the `jobs` role does); yields the API base URL."""
    with shared_serve_app(settings, route_modules, ("crm.jobs", "crm_sync.jobs")) as base:
        yield f"{base}/api/v1"
