"""The CRM's HTTP routes: every endpoint is declared on kernel.http (typed models, a declared
access policy, generated OpenAPI) in record_routes, operation_routes, analytics_routes,
job_routes, report_routes, kpi_routes, export_routes, view_routes and tenant_routes; `setup`
mounts them.
(Sign-in and tokens, /api/v1/auth/..., are identity.routes; users are records of the
`users` entity, written by admins only.)
"""

from __future__ import annotations

from aiohttp import web

from crm import hooks
from crm.analytics_routes import analytics_routes
from crm.export_routes import routes as export_routes
from crm.job_routes import job_routes
from crm.kpi_routes import routes as kpi_routes
from crm.meta_routes import meta_routes
from crm.operation_routes import operation_routes
from crm.record_routes import all_routes
from crm.report_routes import routes as report_routes
from crm.tenant_routes import routes as tenant_routes
from crm.view_routes import routes as view_routes


def setup(app: web.Application) -> None:
    hooks.install()
    # Specific paths first: /contacts/duplicates before /contacts/{id}.
    for routes in (
        operation_routes(),
        analytics_routes(),
        job_routes(),
        meta_routes(),
        report_routes,
        kpi_routes,
        export_routes,
        view_routes,
        tenant_routes,
        *all_routes(),
    ):
        routes.mount(app)
