"""The CRM served by the real aiohttp app on a loopback port, against this session's
migrated database; a small world of territories, users and tokens to test access with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest
import requests

from kernel.settings import Settings
from tests.appserver import serve_app
from tests.world import Api, People


def serve(settings: Settings) -> AbstractContextManager[str]:
    """The real app with the CRM routes (and sign-in) on a free loopback port."""
    return serve_app(settings, ("identity.routes", "crm.routes"))


@pytest.fixture(scope="session")
def crm_url(test_settings: Settings) -> Iterator[str]:
    with serve(test_settings) as url:
        yield url


@dataclass
class World:
    url: str
    suffix: str
    t1: int
    t2: int
    users: dict[str, int]
    tokens: dict[str, str]

    def api(self, who: str) -> Api:
        return Api(self.url, self.tokens[who])


@pytest.fixture(scope="session")
def world(crm_url: str, people: People) -> World:
    return World(crm_url, people.suffix, people.t1, people.t2, people.users, people.tokens)


def etag_of(resp: requests.Response) -> str:
    return resp.headers["ETag"]
