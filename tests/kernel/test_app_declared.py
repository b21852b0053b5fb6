"""Deny by default over the whole product: every route of the assembled app is declared
through kernel.http (so it has an access policy) and appears in the OpenAPI document."""

from __future__ import annotations

import re

from fieldmesh.app import build_app
from kernel.http import ENDPOINTS, undeclared_routes
from kernel.openapi import document
from kernel.settings import Settings


def test_every_route_is_declared_and_documented(settings: Settings) -> None:
    app = build_app(settings)  # builds without connecting: the pool opens at start-up
    assert undeclared_routes(app) == []
    doc = document(app)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    for ep in app[ENDPOINTS]:
        path = re.sub(r"{(\w+):[^}]+}", r"{\1}", ep.path)
        assert (ep.method, path) in documented, f"{ep.method} {ep.path} is not documented"
        op = doc["paths"][path][ep.method.lower()]
        assert op["x-access"]["roles"], f"{ep.method} {ep.path} declares no access"
        if ep.access.is_public:
            assert ep.access.reason, f"{ep.method} {ep.path} is public without a reason"
    assert len(app[ENDPOINTS]) > 150
