"""HTTP API under /api/v1/geo: territories, geofences, visits, location history.

Access (geo.access states the record rules):
- reads need a signed-in user and show what the caller may see: territories (and their
  balance, coverage, overlaps) of the caller's own or team's territories, fences of the
  accounts, reps and devices they see, visits of their accounts or reps, and a device's
  track, stops and fence events only when they see the device (404 otherwise);
- territory imports, account reassignment and the automatic site fences act on every
  territory at once: admins only;
- fences are created and deleted by managers and admins, on accounts, reps, devices or
  areas they see.
Input errors from the pure modules (geo.errors.GeoError) become 422 with the offending
field; geometry checks run off the event loop (a territory file can be megabytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from psycopg import AsyncConnection
from psycopg.errors import ForeignKeyViolation
from shapely.geometry import MultiPolygon

from crm.access import may_see_account
from geo import repo
from geo.access import (
    fence_clause,
    fence_scope,
    may_see_fence,
    subject_scope,
    visible_territories,
    visit_clause,
)
from geo.errors import GeoError, InvalidGeometry
from geo.fences import fence_from_geojson
from geo.history import detect_stops, distance_m, time_budget, track_geojson
from geo.schemas import (
    AccountMove,
    AssignOut,
    AssignQuery,
    FenceIn,
    FenceList,
    FenceListQuery,
    FenceOut,
    FencePath,
    GeoEventList,
    GeoEventOut,
    GeometryCheck,
    GeoMultiPolygon,
    GeoPeriodQuery,
    GeoRepairQuery,
    GeoSubjectPath,
    GeoVisit,
    GeoVisitList,
    GeoVisitsQuery,
    PolygonalGeometry,
    SyncFencesIn,
    SyncFencesOut,
    TerritoryBalanceOut,
    TerritoryBalanceRow,
    TerritoryCollectionIn,
    TerritoryCollectionOut,
    TerritoryCoverage,
    TerritoryCoverageRow,
    TerritoryFeatureOut,
    TerritoryImport,
    TerritoryImportOut,
    TerritoryImportQuery,
    TerritoryOutProperties,
    TerritoryOverlap,
    TerritoryOverlapsOut,
    TerritorySaved,
    TrackGeometry,
    TrackOut,
    TrackProperties,
    TrackStop,
    TrackSummary,
    TrackTimeSpent,
    as_mapping,
)
from geo.shapes import as_multipolygon, parse_geometry, to_geojson
from geo.territories import Move, Overlap, find_overlaps, imbalance
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes
from kernel.principal import Forbidden, Principal
from telemetry.access import may_see_device

PREFIX = "/api/v1/geo"
routes = Routes("geo", "Territories, geofences, visits, location history")

T = TypeVar("T")

# A territory file holds detailed boundaries; a fence or a geometry to check is one shape.
TERRITORIES_MAX_BYTES = 32 * 1024 * 1024
FENCE_MAX_BYTES = 4 * 1024 * 1024
VALIDATE_MAX_BYTES = 8 * 1024 * 1024
MAX_PERIOD = timedelta(days=366)

ADMIN_MAP = "territories shape every team's records: only admins redraw them or move accounts"
FILTERED = "the answer is filtered to the territories the caller may see"


@contextmanager
def _geo_errors() -> Iterator[None]:
    try:
        yield
    except GeoError as exc:
        raise Unprocessable(exc.message, field=exc.field) from None


async def _checked(fn: Callable[[], T]) -> T:
    """Run a geometry check off the event loop, its GeoError as a 422."""
    with _geo_errors():
        return await asyncio.to_thread(fn)


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[from, to) in UTC: `to` defaults to now, `from` to a day before `to`."""
    try:
        end = (end or datetime.now(UTC)).astimezone(UTC)
    except OverflowError:
        raise Unprocessable("to: out of range", field="to") from None
    try:
        start = start.astimezone(UTC) if start else end - timedelta(days=1)
    except OverflowError:
        raise Unprocessable("from: out of range", field="from") from None
    if start >= end:
        raise Unprocessable("from must be before to", field="from")
    return start, end


def _history_period(query: GeoPeriodQuery) -> tuple[datetime, datetime]:
    start, end = _period(query.start, query.end)
    if end - start > MAX_PERIOD:
        raise Unprocessable("from: a history period is at most 366 days", field="from")
    return start, end


# ------------------------------------------------------------------------ territories


def _overlap(o: Overlap) -> TerritoryOverlap:
    return TerritoryOverlap(a=o.a, b=o.b, area_m2=round(o.area_m2, 1))


def _move(m: Move) -> AccountMove:
    return AccountMove(m.account_id, m.from_territory, m.to_territory)


def _visible_overlaps(overlaps: list[Overlap], only: list[int] | None) -> list[TerritoryOverlap]:
    seen = None if only is None else set(only)
    return [_overlap(o) for o in overlaps if seen is None or {o.a, o.b} <= seen]


def territories_from_import(
    body: TerritoryImport, repair: bool
) -> list[tuple[str, str | None, MultiPolygon]]:
    """(name, region, geometry) of every feature, each validated, or the first error."""
    features = body.features if isinstance(body, TerritoryCollectionIn) else [body]
    out = []
    for i, f in enumerate(features):
        name = f.properties.name.strip()
        if not name:
            raise InvalidGeometry(
                f"features[{i}].properties.name: a territory needs a name (1 to 200 characters)",
                field=f"features[{i}].properties.name",
            )
        geom = parse_geometry(
            as_mapping(f.geometry), field=f"features[{i}].geometry", repair=repair
        )
        out.append((name, f.properties.region, as_multipolygon(geom)))
    return out


@routes.get(
    PREFIX + "/territories",
    access=Access.read(unscoped=FILTERED),
    summary="Export territories as a GeoJSON FeatureCollection",
)
async def get_territories(req: Req) -> TerritoryCollectionOut:
    async with req.connection() as conn:
        rows = await repo.export_territories(conn, visible_territories(req.user))
    return TerritoryCollectionOut(
        features=[
            TerritoryFeatureOut(
                id=tid,
                geometry=None if geom is None else msgspec.json.decode(geom, type=GeoMultiPolygon),
                properties=TerritoryOutProperties(id=tid, name=name, region=region, accounts=n),
            )
            for tid, name, region, geom, n in rows
        ]
    )


@routes.post(
    PREFIX + "/territories",
    access=Access.admin(unscoped=ADMIN_MAP),
    summary="Import territories (a FeatureCollection, upserted by name)",
    description="`repair=true` fixes invalid polygons with make_valid instead of refusing "
    "them; `reassign=true` then moves every account to the territory containing its site. "
    "Every feature is checked before anything is stored.",
    status=201,
    max_body_bytes=TERRITORIES_MAX_BYTES,
)
async def post_territories(
    req: Req, query: TerritoryImportQuery, body: TerritoryImport
) -> TerritoryImportOut:
    parsed = await _checked(lambda: territories_from_import(body, query.repair))
    async with req.connection() as conn:
        with _geo_errors():
            saved = await repo.import_territories(conn, parsed)
        territories = await repo.load_territories(conn)
        moved = await repo.reassign_accounts(conn) if query.reassign else []
    overlaps = await asyncio.to_thread(find_overlaps, territories)
    return TerritoryImportOut(
        territories=[msgspec.convert(s, TerritorySaved) for s in saved],
        overlaps=[_overlap(o) for o in overlaps],
        moved=[_move(m) for m in moved],
    )


@routes.get(
    PREFIX + "/territories/overlaps",
    access=Access.read(unscoped=FILTERED + " (both of a pair)"),
    summary="Pairs of overlapping territories with the overlap area",
)
async def get_overlaps(req: Req) -> TerritoryOverlapsOut:
    async with req.connection() as conn:
        territories = await repo.load_territories(conn)
    overlaps = await asyncio.to_thread(find_overlaps, territories)
    return TerritoryOverlapsOut(_visible_overlaps(overlaps, visible_territories(req.user)))


@routes.post(
    PREFIX + "/territories/assign",
    access=Access.admin(unscoped=ADMIN_MAP),
    summary="Assign every account to the territory containing its site",
)
async def post_assign(req: Req, query: AssignQuery) -> AssignOut:
    async with req.connection() as conn:
        moved = await repo.reassign_accounts(conn, dry_run=query.dry_run)
    return AssignOut(query.dry_run, len(moved), [_move(m) for m in moved])


@routes.get(
    PREFIX + "/territories/balance",
    access=Access.read(unscoped=FILTERED),
    summary="Accounts, revenue and open work orders per territory",
)
async def get_balance(req: Req) -> TerritoryBalanceOut:
    async with req.connection() as conn:
        rows = await repo.balance(conn, visible_territories(req.user))
    return TerritoryBalanceOut(
        territories=[
            TerritoryBalanceRow(r.territory_id, r.name, r.accounts, r.revenue, r.open_work_orders)
            for r in rows
        ],
        imbalance={
            m: round(imbalance(rows, m), 4) for m in ("accounts", "revenue", "open_work_orders")
        },
    )


@routes.get(
    PREFIX + "/coverage",
    access=Access.read(unscoped=FILTERED),
    summary="Per-territory visit coverage for a period",
)
async def get_coverage(req: Req, query: GeoPeriodQuery) -> TerritoryCoverage:
    start, end = _period(query.start, query.end)
    async with req.connection() as conn:
        rows = await repo.coverage(conn, start, end, visible_territories(req.user))
    return TerritoryCoverage(start, end, [msgspec.convert(r, TerritoryCoverageRow) for r in rows])


# ------------------------------------------------------------------------ geofences


def _fence(row: dict[str, Any]) -> FenceOut:
    return msgspec.convert(row, FenceOut)


@routes.get(
    PREFIX + "/fences",
    access=Access.read(unscoped="the list is filtered to the fences the caller may see"),
    summary="List geofences",
)
async def get_fences(req: Req, query: FenceListQuery) -> FenceList:
    async with req.connection() as conn:
        rows = await repo.list_fences(conn, query.account_id, fence_clause(req.user, "g"))
    return FenceList([_fence(r) for r in rows])


async def _check_links(conn: AsyncConnection[Any], principal: Principal, body: FenceIn) -> None:
    """The account, rep and device a new fence names exist and are the caller's to see."""
    if body.account_id is not None and not await may_see_account(conn, principal, body.account_id):
        raise Unprocessable(f"account_id: no account {body.account_id}", field="account_id")
    if body.rep_id is not None and not (
        principal.sees_everything or body.rep_id in principal.team_user_ids
    ):
        raise Unprocessable(f"rep_id: no rep {body.rep_id} in your team", field="rep_id")
    if body.device_id is not None and not await may_see_device(conn, principal, body.device_id):
        raise Unprocessable(f"device_id: no device {body.device_id!r}", field="device_id")


@routes.post(
    PREFIX + "/fences",
    access=Access.managers(
        unscoped="the fence's account, rep and device (or, for a free fence, its area) must "
        "be ones the caller may see: checked against the body (422 or 403)"
    ),
    summary="Create a polygon or circle geofence",
    description="A Point with `radius_m` is a circle fence, a (Multi)Polygon a polygon fence.",
    status=201,
    max_body_bytes=FENCE_MAX_BYTES,
)
async def post_fence(req: Req, body: FenceIn) -> FenceOut:
    fence = await _checked(
        lambda: fence_from_geojson(
            "new",
            as_mapping(body.geometry),
            radius_m=body.radius_m,
            repair=body.repair,
            dwell_s=body.dwell_s,
        )
    )
    principal = req.user
    async with req.connection() as conn:
        await _check_links(conn, principal, body)
        try:
            row = await repo.create_fence(
                conn,
                name=body.name,
                kind=fence.kind,
                wkt=fence.geometry.wkt,
                radius_m=fence.radius_m,
                dwell_s=fence.dwell_s,
                account_id=body.account_id,
                device_id=body.device_id,
                rep_id=body.rep_id,
            )
        except ForeignKeyViolation:  # deleted since the check
            raise Unprocessable("account_id or rep_id: no such record") from None
        # A free fence must lie in a territory the caller sees (or they could not see it):
        # raising here rolls the insert back with the connection's transaction.
        if not await may_see_fence(conn, principal, int(row["id"])):
            raise Forbidden("the fence lies outside the territories you may see")
    return _fence(row)


@routes.get(
    PREFIX + "/fences/{fence_id}",
    access=Access.read(scope=fence_scope),
    summary="One geofence",
)
async def get_fence(req: Req, path: FencePath) -> FenceOut:
    async with req.connection() as conn:
        row = await repo.get_fence(conn, path.fence_id)
    if row is None:
        raise NotFound(f"no geofence {path.fence_id}", field="fence_id")
    return _fence(row)


@routes.delete(
    PREFIX + "/fences/{fence_id}",
    access=Access.managers(scope=fence_scope),
    summary="Delete a geofence",
    status=204,
)
async def delete_fence(req: Req, path: FencePath) -> None:
    async with req.connection() as conn:
        if not await repo.delete_fence(conn, path.fence_id):
            raise NotFound(f"no geofence {path.fence_id}", field="fence_id")


@routes.post(
    PREFIX + "/fences/sync-accounts",
    access=Access.admin(unscoped="it writes a fence around every account's site"),
    summary="A circle fence around every account site",
    description="Send `{}` for the defaults (100 m, 10 minutes' dwell).",
)
async def post_sync_account_fences(req: Req, body: SyncFencesIn) -> SyncFencesOut:
    async with req.connection() as conn:
        done = await repo.sync_account_fences(conn, body.radius_m, body.dwell_s)
    return SyncFencesOut(**done)


@routes.post(
    PREFIX + "/validate",
    access=Access.read(unscoped="it checks the geometry in the body and reads no records"),
    summary="Validate (or repair) a GeoJSON polygon",
    max_body_bytes=VALIDATE_MAX_BYTES,
)
async def post_validate(query: GeoRepairQuery, body: PolygonalGeometry) -> GeometryCheck:
    geom = await _checked(lambda: parse_geometry(as_mapping(body), repair=query.repair))
    return GeometryCheck(True, msgspec.convert(to_geojson(geom), PolygonalGeometry))


# ------------------------------------------------------------------------ history


@routes.get(
    PREFIX + "/subjects/{subject_id}/track",
    access=Access.read(scope=subject_scope),
    summary="A subject's track as a GeoJSON LineString",
    description="A subject is a device (a rep's phone or equipment); `from` defaults to a "
    "day before `to`, `to` to now; periods are at most 366 days.",
)
async def get_track(req: Req, path: GeoSubjectPath, query: GeoPeriodQuery) -> TrackOut:
    start, end = _history_period(query)
    async with req.connection() as conn:
        points = await repo.track_points(conn, path.subject_id, start, end)
    return TrackOut(
        geometry=msgspec.convert(track_geojson(points), TrackGeometry),
        properties=TrackProperties(
            subject_id=path.subject_id,
            start=start,
            end=end,
            fixes=len(points),
            distance_m=round(distance_m(points), 1),
            times_ms=[p[0] for p in points],
        ),
    )


def _visits(rows: list[dict[str, Any]]) -> list[GeoVisit]:
    return [msgspec.convert(v, GeoVisit) for v in rows]


@routes.get(
    PREFIX + "/subjects/{subject_id}/summary",
    access=Access.read(scope=subject_scope),
    summary="Distance, stops, time on site vs driving",
)
async def get_summary(req: Req, path: GeoSubjectPath, query: GeoPeriodQuery) -> TrackSummary:
    start, end = _history_period(query)
    async with req.connection() as conn:
        points = await repo.track_points(conn, path.subject_id, start, end)
        visits = await repo.visit_intervals(conn, path.subject_id, start, end)
    stops = detect_stops(points)
    intervals = [
        (int(v["arrived_at"].timestamp() * 1000), int((v["departed_at"] or end).timestamp() * 1000))
        for v in visits
    ]
    budget = time_budget(points, stops, intervals)
    return TrackSummary(
        subject_id=path.subject_id,
        start=start,
        end=end,
        fixes=len(points),
        distance_m=round(distance_m(points), 1),
        stops=[TrackStop(s.start_ms, s.end_ms, s.lon, s.lat, s.duration_s) for s in stops],
        visits=_visits(visits),
        time=TrackTimeSpent(budget.on_site_s, budget.stopped_s, budget.driving_s, budget.gap_s),
    )


@routes.get(
    PREFIX + "/subjects/{subject_id}/events",
    access=Access.read(scope=subject_scope),
    summary="A subject's geofence events",
)
async def get_events(req: Req, path: GeoSubjectPath, query: GeoPeriodQuery) -> GeoEventList:
    start, end = _history_period(query)
    async with req.connection() as conn:
        rows = await repo.events(conn, path.subject_id, start, end)
    return GeoEventList(path.subject_id, [msgspec.convert(e, GeoEventOut) for e in rows])


@routes.get(
    PREFIX + "/visits",
    access=Access.read(
        unscoped="the list is filtered to visits of accounts or reps the caller may see"
    ),
    summary="Site visits in a period",
)
async def get_visits(req: Req, query: GeoVisitsQuery) -> GeoVisitList:
    start, end = _period(query.start, query.end)
    async with req.connection() as conn:
        rows = await repo.visit_intervals(
            conn, query.subject_id, start, end, visit_clause(req.user, "v")
        )
    return GeoVisitList(_visits(rows))


def setup(app: web.Application) -> None:
    routes.mount(app)
