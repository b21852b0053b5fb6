"""HTTP API under /api/v1/geo: territories, geofences, visits, location history.

Reads need a token; writes need the admin or manager role. Input errors from the pure
modules (geo.errors.GeoError) become 422 with the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from geo import repo
from geo.errors import GeoError
from geo.fences import fence_from_geojson
from geo.history import detect_stops, distance_m, time_budget, track_geojson
from geo.territories import BalanceRow, Move, Overlap, find_overlaps, imbalance
from identity.auth import current_user
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.openapi import add_fragment, error_response
from kernel.web import DB_POOL

PREFIX = "/api/v1/geo"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=_default))


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if hasattr(o, "__float__"):
        return float(o)
    raise TypeError(type(o).__name__)


def _handler(write: bool = False) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            principal = await current_user(request)
            if write and principal.role not in ("admin", "manager"):
                raise ApiError(
                    "only admins and managers may change territories and geofences",
                    code="forbidden",
                    status=403,
                )
            try:
                return await fn(request)
            except GeoError as exc:
                raise Unprocessable(exc.message, field=exc.field) from None

        return inner

    return wrap


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("1", "true", "yes")


def _period(request: web.Request) -> tuple[datetime, datetime]:
    def parse(name: str, default: datetime) -> datetime:
        raw = request.query.get(name)
        if raw is None:
            return default
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(f"{name}: not an ISO-8601 time: {raw[:40]!r}", field=name) from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    end = parse("to", datetime.now(UTC))
    start = parse("from", end - timedelta(days=1))
    if start >= end:
        raise ApiError("from must be before to", field="from")
    return start, end


async def _body(request: web.Request) -> Any:
    return await request.json()


# ------------------------------------------------------------------------ territories


@_handler()
async def get_territories(request: web.Request) -> web.Response:
    async with request.app[DB_POOL].connection() as conn:
        return _json(await repo.export_territories(conn))


@_handler(write=True)
async def post_territories(request: web.Request) -> web.Response:
    body = await _body(request)
    async with request.app[DB_POOL].connection() as conn:
        saved = await repo.import_territories(conn, body, repair=_flag(request, "repair"))
        overlaps = find_overlaps(await repo.load_territories(conn))
        moved = await repo.reassign_accounts(conn) if _flag(request, "reassign") else []
    return _json(
        {
            "territories": saved,
            "overlaps": [_overlap(o) for o in overlaps],
            "moved": [_move(m) for m in moved],
        },
        status=201,
    )


def _overlap(o: Overlap) -> dict[str, Any]:
    return {"a": o.a, "b": o.b, "area_m2": round(o.area_m2, 1)}


def _move(m: Move) -> dict[str, Any]:
    return {
        "account_id": m.account_id,
        "from_territory": m.from_territory,
        "to_territory": m.to_territory,
    }


@_handler()
async def get_overlaps(request: web.Request) -> web.Response:
    async with request.app[DB_POOL].connection() as conn:
        overlaps = find_overlaps(await repo.load_territories(conn))
    return _json({"overlaps": [_overlap(o) for o in overlaps]})


@_handler(write=True)
async def post_assign(request: web.Request) -> web.Response:
    dry_run = _flag(request, "dry_run")
    async with request.app[DB_POOL].connection() as conn:
        moved = await repo.reassign_accounts(conn, dry_run=dry_run)
    return _json(
        {"dry_run": dry_run, "moved_count": len(moved), "moved": [_move(m) for m in moved]}
    )


@_handler()
async def get_balance(request: web.Request) -> web.Response:
    async with request.app[DB_POOL].connection() as conn:
        rows = await repo.balance(conn)
    return _json(
        {
            "territories": [_balance_row(r) for r in rows],
            "imbalance": {
                m: round(imbalance(rows, m), 4) for m in ("accounts", "revenue", "open_work_orders")
            },
        }
    )


def _balance_row(r: BalanceRow) -> dict[str, Any]:
    return {
        "territory_id": r.territory_id,
        "name": r.name,
        "accounts": r.accounts,
        "revenue": r.revenue,
        "open_work_orders": r.open_work_orders,
    }


@_handler()
async def get_coverage(request: web.Request) -> web.Response:
    start, end = _period(request)
    async with request.app[DB_POOL].connection() as conn:
        return _json(
            {"from": start, "to": end, "territories": await repo.coverage(conn, start, end)}
        )


# ------------------------------------------------------------------------ geofences


def _int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable(f"{field}: must be an integer", field=field)
    return value


@_handler()
async def get_fences(request: web.Request) -> web.Response:
    raw = request.query.get("account_id")
    account_id = int(raw) if raw and raw.isdigit() else None
    async with request.app[DB_POOL].connection() as conn:
        return _json({"fences": await repo.list_fences(conn, account_id)})


@_handler(write=True)
async def post_fence(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise Unprocessable("body: expected a JSON object", field="body")
    radius = body.get("radius_m")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int | float)):
        raise Unprocessable("radius_m: must be a number of metres", field="radius_m")
    dwell = body.get("dwell_s")
    if dwell is not None and (isinstance(dwell, bool) or not isinstance(dwell, int | float)):
        raise Unprocessable("dwell_s: must be a number of seconds", field="dwell_s")
    fence = fence_from_geojson(
        "new",
        body.get("geometry"),
        radius_m=radius,
        repair=bool(body.get("repair", False)),
        dwell_s=dwell,
    )
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise Unprocessable("name: up to 200 characters", field="name")
    device_id = body.get("device_id")
    if device_id is not None and not isinstance(device_id, str):
        raise Unprocessable("device_id: must be a string", field="device_id")
    async with request.app[DB_POOL].connection() as conn:
        row = await repo.create_fence(
            conn,
            name=name,
            kind=fence.kind,
            wkt=fence.geometry.wkt,
            radius_m=fence.radius_m,
            dwell_s=fence.dwell_s,
            account_id=_int(body.get("account_id"), "account_id"),
            device_id=device_id,
            rep_id=_int(body.get("rep_id"), "rep_id"),
        )
    return _json(row, status=201)


def _fence_id(request: web.Request) -> int:
    raw = request.match_info["fence_id"]
    if not raw.isdigit():
        raise NotFound(f"no geofence {raw[:40]!r}")
    return int(raw)


@_handler()
async def get_fence(request: web.Request) -> web.Response:
    fid = _fence_id(request)
    async with request.app[DB_POOL].connection() as conn:
        row = await repo.get_fence(conn, fid)
    if row is None:
        raise NotFound(f"no geofence {fid}")
    return _json(row)


@_handler(write=True)
async def delete_fence(request: web.Request) -> web.Response:
    fid = _fence_id(request)
    async with request.app[DB_POOL].connection() as conn:
        if not await repo.delete_fence(conn, fid):
            raise NotFound(f"no geofence {fid}")
    return web.Response(status=204)


@_handler(write=True)
async def post_sync_account_fences(request: web.Request) -> web.Response:
    body = await _body(request) if request.can_read_body else {}
    radius = body.get("radius_m", 100.0) if isinstance(body, dict) else 100.0
    dwell = body.get("dwell_s", 600.0) if isinstance(body, dict) else 600.0
    for name, v, hi in (("radius_m", radius, 100_000), ("dwell_s", dwell, 86_400)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= hi:
            raise Unprocessable(f"{name}: must be a number in (0, {hi}]", field=name)
    async with request.app[DB_POOL].connection() as conn:
        return _json(await repo.sync_account_fences(conn, float(radius), float(dwell)))


@_handler()
async def post_validate(request: web.Request) -> web.Response:
    from geo.shapes import parse_geometry, to_geojson

    geom = parse_geometry(await _body(request), repair=_flag(request, "repair"))
    return _json({"valid": True, "geometry": to_geojson(geom)})


# ------------------------------------------------------------------------ history


@_handler()
async def get_track(request: web.Request) -> web.Response:
    subject = request.match_info["subject_id"]
    start, end = _period(request)
    async with request.app[DB_POOL].connection() as conn:
        points = await repo.track_points(conn, subject, start, end)
    return _json(
        {
            "type": "Feature",
            "geometry": track_geojson(points),
            "properties": {
                "subject_id": subject,
                "from": start,
                "to": end,
                "fixes": len(points),
                "distance_m": round(distance_m(points), 1),
                "times_ms": [p[0] for p in points],
            },
        }
    )


@_handler()
async def get_summary(request: web.Request) -> web.Response:
    subject = request.match_info["subject_id"]
    start, end = _period(request)
    async with request.app[DB_POOL].connection() as conn:
        points = await repo.track_points(conn, subject, start, end)
        visits = await repo.visit_intervals(conn, subject, start, end)
    stops = detect_stops(points)
    intervals = [
        (int(v["arrived_at"].timestamp() * 1000), int((v["departed_at"] or end).timestamp() * 1000))
        for v in visits
    ]
    budget = time_budget(points, stops, intervals)
    return _json(
        {
            "subject_id": subject,
            "from": start,
            "to": end,
            "fixes": len(points),
            "distance_m": round(distance_m(points), 1),
            "stops": [
                {
                    "start_ms": s.start_ms,
                    "end_ms": s.end_ms,
                    "lon": s.lon,
                    "lat": s.lat,
                    "duration_s": s.duration_s,
                }
                for s in stops
            ],
            "visits": visits,
            "time": {
                "on_site_s": budget.on_site_s,
                "stopped_s": budget.stopped_s,
                "driving_s": budget.driving_s,
                "gap_s": budget.gap_s,
            },
        }
    )


@_handler()
async def get_events(request: web.Request) -> web.Response:
    subject = request.match_info["subject_id"]
    start, end = _period(request)
    async with request.app[DB_POOL].connection() as conn:
        return _json(
            {"subject_id": subject, "events": await repo.events(conn, subject, start, end)}
        )


@_handler()
async def get_visits(request: web.Request) -> web.Response:
    start, end = _period(request)
    subject = request.query.get("subject_id")
    async with request.app[DB_POOL].connection() as conn:
        return _json({"visits": await repo.visit_intervals(conn, subject, start, end)})  # type: ignore[arg-type]


# ------------------------------------------------------------------------ wiring

ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", "/territories", get_territories, "Export territories as a GeoJSON FeatureCollection"),
    (
        "POST",
        "/territories",
        post_territories,
        "Import territories (FeatureCollection; ?repair, ?reassign)",
    ),
    (
        "GET",
        "/territories/overlaps",
        get_overlaps,
        "Pairs of overlapping territories with the overlap area",
    ),
    (
        "POST",
        "/territories/assign",
        post_assign,
        "Assign every account to the territory containing its site",
    ),
    (
        "GET",
        "/territories/balance",
        get_balance,
        "Accounts, revenue and open work orders per territory",
    ),
    ("GET", "/coverage", get_coverage, "Per-territory visit coverage for a period"),
    ("GET", "/fences", get_fences, "List geofences"),
    ("POST", "/fences", post_fence, "Create a polygon or circle geofence"),
    (
        "POST",
        "/fences/sync-accounts",
        post_sync_account_fences,
        "A circle fence around every account site",
    ),
    ("POST", "/validate", post_validate, "Validate (or repair) a GeoJSON polygon"),
    ("GET", "/fences/{fence_id}", get_fence, "One geofence"),
    ("DELETE", "/fences/{fence_id}", delete_fence, "Delete a geofence"),
    ("GET", "/subjects/{subject_id}/track", get_track, "A subject's track as a GeoJSON LineString"),
    (
        "GET",
        "/subjects/{subject_id}/summary",
        get_summary,
        "Distance, stops, time on site vs driving",
    ),
    ("GET", "/subjects/{subject_id}/events", get_events, "A subject's geofence events"),
    ("GET", "/visits", get_visits, "Site visits in a period"),
]


def _openapi_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, _, summary in ROUTES:
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in ("fence_id", "subject_id")
            if "{" + n + "}" in path
        ]
        if method == "GET" and any(
            k in path for k in ("track", "summary", "events", "coverage", "visits")
        ):
            params += [
                {
                    "name": n,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "format": "date-time"},
                }
                for n in ("from", "to")
            ]
        op: dict[str, Any] = {
            "tags": ["geo"],
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": {
                "200" if method == "GET" else ("204" if method == "DELETE" else "201"): {
                    "description": "OK",
                    **(
                        {}
                        if method == "DELETE"
                        else {"content": {"application/json": {"schema": {"type": "object"}}}}
                    ),
                },
                "400": error_response("BadRequest"),
                "401": error_response("Unauthorized"),
                "404": error_response("NotFound"),
                "422": error_response("Unprocessable"),
            },
        }
        if method == "POST":
            op["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
            op["responses"]["403"] = error_response("Forbidden")
        paths.setdefault(PREFIX + path, {})[method.lower()] = op
    return paths


def setup(app: web.Application) -> None:
    for method, path, handler, _ in ROUTES:
        app.router.add_route(method, PREFIX + path, handler)
    add_fragment(
        app,
        paths=_openapi_paths(),
        tags=[{"name": "geo", "description": "Territories, geofences, visits, location history"}],
    )
