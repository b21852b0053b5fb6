"""HTTP side of the console: the front end's pages and files, its config, the map's APIs.

Sign-in uses the API's credentials through the app's authenticator (`kernel.http`): the
front end keeps a bearer token in localStorage and sends `Authorization: Bearer` (the offline
queue of the rep's view needs the token to replay actions); session cookies work the same
way where the authenticator accepts them. XSS is the risk of a token in localStorage, so
every page and file is served with a strict Content-Security-Policy (scripts only from
'self', no inline script) and the other security headers of `kernel.pages`.

Pages and static files hold no data: they are public, and everything they show comes from
the APIs, each of which filters by the caller's record scope (devices by `device_clause`,
accounts by `account_clause`, routing plans by the plan rule below). The live WebSocket is
in `console/live_socket.py`.
"""

from __future__ import annotations

import mimetypes
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import sql
from psycopg.rows import dict_row

from console import live_socket
from crm.access import account_clause
from crm.search import DOCUMENTS, like_pattern
from crm.search import search as crm_search
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes
from kernel.pages import page_headers
from kernel.principal import Principal, access_clause
from kernel.settings import PROJECT_ROOT, Settings
from telemetry.access import device_clause
from telemetry.online import last_received_sql, online_sql

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Front-end packages served from node_modules (never a CDN: the sites have no internet).
# world-atlas is Natural Earth's land and country borders as TopoJSON: the offline basemap.
VENDOR_DIRS = {
    "leaflet": PROJECT_ROOT / "node_modules" / "leaflet" / "dist",
    "markercluster": PROJECT_ROOT / "node_modules" / "leaflet.markercluster" / "dist",
    "topojson": PROJECT_ROOT / "node_modules" / "topojson-client" / "dist",
    "world-atlas": PROJECT_ROOT / "node_modules" / "world-atlas",
}
MQTT_DIR = PROJECT_ROOT / "node_modules" / "mqtt" / "dist"  # MQTT.js: the rep phone's GPS

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: {tiles}; media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")

routes = Routes("console", "The web console's pages, files and map data")

_SHELL = "a page shell: it holds no data and signs in through the API"
_FILES = "front-end code and styles: no data behind them"


def _safe_file(root: Path, rel: str) -> Path:
    """`rel` inside `root`, or 404: no '..' or absolute paths out of the static folder."""
    path = (root / rel).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"no console file {rel[:80]!r}")
    return path


def _tile_url(settings: Settings) -> str:
    """Settings.console_tile_url (FIELDMESH_CONSOLE_TILE_URL), or '' for no tiles."""
    return settings.console_tile_url or ""


def _file_response(req: Req, path: Path, *, no_cache: bool = False) -> web.FileResponse:
    tiles = _tile_url(req.settings)
    origin = tiles.split("/{", 1)[0] if tiles else ""
    # the rep's view asks for the phone's position (visit check-in); the assistant's
    # push-to-talk for the microphone
    headers = page_headers(
        CSP.format(tiles=origin).replace("  ", " "), allow_features=("geolocation", "microphone")
    )
    headers["Cache-Control"] = "no-cache" if no_cache else "public, max-age=300"
    if path.name == "sw.js":
        headers["Service-Worker-Allowed"] = "/"
    return web.FileResponse(path, headers=headers)


class ConsoleFilePath(msgspec.Struct, frozen=True):
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


@routes.get("/console", access=Access.public(_SHELL), summary="Redirect to the console")
async def redirect() -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@routes.get(
    "/console/",
    access=Access.public(_SHELL),
    summary="The console's page",
    content_type="text/html",
)
async def index(req: Req) -> web.StreamResponse:
    return _file_response(req, STATIC_DIR / "index.html", no_cache=True)


@routes.get(
    "/console/rep/",
    access=Access.public(_SHELL),
    summary="The rep's phone view",
    content_type="text/html",
)
async def rep_index(req: Req) -> web.StreamResponse:
    return _file_response(req, STATIC_DIR / "rep" / "index.html", no_cache=True)


class VendorFilePath(msgspec.Struct, frozen=True):
    package: Literal["leaflet", "markercluster", "topojson", "world-atlas"]
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


@routes.get(
    "/console/vendor/{package}/{path:.+}",
    access=Access.public(_FILES),
    summary="Front-end packages from node_modules (Leaflet, clustering, the offline basemap)",
    content_type="application/octet-stream",
)
async def vendor_file(req: Req, path: VendorFilePath) -> web.StreamResponse:
    return _file_response(req, _safe_file(VENDOR_DIRS[path.package], path.path))


@routes.get(
    "/console/vendor/mqtt/{path:.+}",
    access=Access.public(_FILES),
    summary="MQTT.js, from node_modules (the rep's phone publishes its GPS over WebSockets)",
    content_type="application/octet-stream",
)
async def mqtt_file(req: Req, path: ConsoleFilePath) -> web.StreamResponse:
    return _file_response(req, _safe_file(MQTT_DIR, path.path))


class ConsoleConfig(msgspec.Struct, frozen=True):
    tile_url: str | None


@routes.get(
    "/console/config.json",
    access=Access.public("the map's tile URL template, needed before sign-in; no records"),
    summary="The front end's settings",
)
async def config(req: Req) -> ConsoleConfig:
    return ConsoleConfig(_tile_url(req.settings) or None)


# --------------------------------------------------------------------------- map data


class MapDevice(msgspec.Struct, frozen=True):
    device_id: str
    kind: str
    name: str | None
    online: bool | None
    last_seen_ms: int | None
    lon: float | None
    lat: float | None
    t_ms: int | None
    account_id: int | None
    account_name: str | None
    equipment_model: str | None
    alert_state: str | None


class MapPositions(msgspec.Struct, frozen=True):
    devices: list[MapDevice]


# Equipment sits at its account's site (crm_sync assets); phones where their last fix is.
_POSITIONS_SQL = """
SELECT d.device_id, d.kind, d.name,
       %(online)s AS online,  -- telemetry.online: the one definition every page uses
       (extract(epoch FROM rx.received_at) * 1000)::bigint AS last_seen_ms,
       coalesce(f.lon, st_x(a.location::geometry)) AS lon,
       coalesce(f.lat, st_y(a.location::geometry)) AS lat,
       (extract(epoch FROM f.time) * 1000)::bigint AS t_ms,
       a.account_id, a.account_name, a.equipment_model,
       al.alert_state
FROM device d
LEFT JOIN LATERAL (  -- the newest stored message: online is judged by our clock, not the device's
    SELECT %(last_received)s AS received_at
) rx ON true
LEFT JOIN LATERAL (
    SELECT lon, lat, time FROM gps_fix g WHERE g.device_id = d.device_id
    ORDER BY time DESC LIMIT 1
) f ON d.kind = 'phone'
LEFT JOIN LATERAL (
    SELECT x.account_id, c.name AS account_name, c.location, x.equipment_model
    FROM assets x JOIN accounts c ON c.id = x.account_id WHERE x.device_id = d.device_id
) a ON d.kind <> 'phone'
LEFT JOIN LATERAL (
    SELECT min(state) AS alert_state  -- 'acknowledged' < 'raised': any still unacknowledged?
    FROM alerts WHERE device_id = d.device_id AND state <> 'cleared'
) al ON true
WHERE {visible} AND (%s::text IS NULL OR d.device_id = %s)
  AND (%s::bigint IS NULL OR a.account_id = %s)
ORDER BY d.device_id
"""


class PositionsQuery(msgspec.Struct, frozen=True):
    device_id: (
        Annotated[
            str,
            msgspec.Meta(min_length=1, max_length=200, description="one device"),
        ]
        | None
    ) = None
    account_id: (
        Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="the devices at one account")]
        | None
    ) = None


@routes.get(
    "/console/api/positions",
    access=Access.read(unscoped="the list is filtered to the devices the caller may see"),
    summary="Newest position, status and active alert of every device the caller may see",
    errors=(422,),
    description="Phones at their last fix, equipment at its account's site (the map's first "
    "frame). A device is listed when its account (equipment) or its rep (phone) is visible. "
    "`device_id` or `account_id` narrow the list to one device (a device page) or the "
    "equipment at one account (an account page).",
)
async def positions(req: Req, query: PositionsQuery) -> MapPositions:
    if query.device_id is not None and "\x00" in query.device_id:
        raise Unprocessable("device_id: may not contain NUL characters", field="device_id")
    visible, params = device_clause(req.user, sql.Identifier("d", "device_id"))
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        # the visibility clause uses positional parameters: ours follow it
        stmt = sql.SQL(
            _POSITIONS_SQL.replace("%(online)s", online_sql("rx.received_at")).replace(
                "%(last_received)s", last_received_sql("d.device_id")
            )
        )
        one = [query.device_id, query.device_id, query.account_id, query.account_id]
        await cur.execute(stmt.format(visible=visible), [*params, *one])
        rows = await cur.fetchall()
    return MapPositions([msgspec.convert(r, MapDevice) for r in rows])


class MapDayQuery(msgspec.Struct, frozen=True, rename={"day": "date"}):
    day: date | None = None


class MapPlanRef(msgspec.Struct, frozen=True):
    id: int
    territory_id: int | None
    created_at: datetime


class MapPlans(msgspec.Struct, frozen=True, rename={"day": "date"}):
    day: date
    plans: list[MapPlanRef]


def plan_clause(principal: Principal, alias: str) -> tuple[sql.Composable, list[Any]]:
    """The routing plan rule (routing.access.may_see_plan): a plan is visible when it routes
    the caller (or their team); to others than reps also when its territory is theirs (or
    their team's) or they (or their team) created it."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    routed = sql.SQL(
        "EXISTS (SELECT 1 FROM routing_stops rs WHERE rs.plan_id = {} AND rs.rep_id = ANY(%s))"
    ).format(sql.Identifier(alias, "id"))
    if principal.role == "rep":
        # as routing.access.may_see_plan: a rep sees a plan that routes them, not every plan
        # of their territory (listing those made the map fetch routes answering 404)
        return routed, [list(principal.team_user_ids)]
    cond, params = access_clause(principal, alias, owner_column="created_by")
    return sql.SQL("({} OR {})").format(cond, routed), [*params, list(principal.team_user_ids)]


@routes.get(
    "/console/api/plans",
    access=Access.read(unscoped="the list is filtered by the routing plan rule"),
    summary="The newest ready routing plan of each territory for a day (default today)",
    description="Among the plans the caller may see: a rep's own route, a manager's team's.",
)
async def plans(req: Req, query: MapDayQuery) -> MapPlans:
    day = query.day or date.today()
    visible, params = plan_clause(req.user, "p")
    stmt = sql.SQL(
        "SELECT DISTINCT ON (p.territory_id) p.id, p.territory_id, p.created_at"
        " FROM routing_plans p WHERE p.plan_date = %s AND p.status = 'ready'"
        # a plan without its solution cannot be drawn (the routing API answers 409)
        " AND p.problem IS NOT NULL AND p.result IS NOT NULL AND {}"
        " ORDER BY p.territory_id, p.created_at DESC, p.id DESC"
    ).format(visible)
    async with req.connection() as conn:
        rows = await (await conn.execute(stmt, [day, *params])).fetchall()
    return MapPlans(day, [MapPlanRef(*r) for r in rows])


class MapVisit(msgspec.Struct, frozen=True):
    id: int
    subject_id: str
    account_id: int
    rep_id: int | None
    checked_in_at: datetime
    departed_at: datetime | None
    duration_s: float | None
    status: str


class MapVisits(msgspec.Struct, frozen=True, rename={"day": "date"}):
    day: date
    visits: list[MapVisit]


@routes.get(
    "/console/api/visits",
    access=Access.read(unscoped="the list is filtered to the caller's reps and accounts"),
    summary="Automatic geofence check-ins of a day (default today), and open ones",
    description="A visit is listed when its rep is the caller (or in a manager's team) or its "
    "account is one the caller may see.",
)
async def visits(req: Req, query: MapDayQuery) -> MapVisits:
    day = query.day or date.today()
    principal = req.user
    accounts, params = account_clause(principal, sql.Identifier("v", "account_id"))
    stmt = sql.SQL(
        "SELECT v.id, v.subject_id, v.account_id, v.rep_id, v.checked_in_at, v.departed_at,"
        " v.duration_s, v.status FROM visits v"
        " WHERE (v.arrived_at >= %s::date AND v.arrived_at < %s::date + 1 OR v.status = 'open')"
        " AND (%s OR v.rep_id = ANY(%s) OR {}) ORDER BY v.arrived_at"
    ).format(accounts)
    args = [day, day, principal.sees_everything, list(principal.team_user_ids), *params]
    async with req.connection() as conn:
        rows = await (await conn.execute(stmt, args)).fetchall()
    return MapVisits(day, [MapVisit(*r) for r in rows])


# --------------------------------------------------------------------------- sites and tracks


class MapSites(msgspec.Struct, frozen=True):
    """Accounts with a location, as parallel arrays (compact for tens of thousands)."""

    ids: list[int]
    names: list[str]
    types: list[str]
    lon: list[float]
    lat: list[float]
    truncated: bool


MAX_SITES = 50_000


@routes.get(
    "/console/api/sites",
    access=Access.read(unscoped="the list is filtered by the account access rule"),
    summary="Every located account the caller may see (the map's clustered site layer)",
)
async def sites(req: Req) -> MapSites:
    visible, params = account_clause(req.user, sql.Identifier("a", "id"))
    stmt = sql.SQL(
        "SELECT a.id, a.name, a.type, st_x(a.location::geometry), st_y(a.location::geometry)"
        " FROM accounts a WHERE a.location IS NOT NULL AND {} ORDER BY a.id LIMIT %s"
    ).format(visible)
    async with req.connection() as conn:
        rows = await (await conn.execute(stmt, [*params, MAX_SITES + 1])).fetchall()
    cut = rows[:MAX_SITES]
    return MapSites(
        [r[0] for r in cut],
        [r[1] for r in cut],
        [r[2] for r in cut],
        [r[3] for r in cut],
        [r[4] for r in cut],
        len(rows) > MAX_SITES,
    )


MAX_TRACK_POINTS = 20_000


class TrackQuery(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    device_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    start: datetime
    end: datetime


class Track(msgspec.Struct, frozen=True):
    """A device's or rep phone's GPS fixes in time order, as parallel arrays."""

    device_id: str
    t_ms: list[int]
    lon: list[float]
    lat: list[float]
    speed_mps: list[float | None]
    truncated: bool


@routes.get(
    "/console/api/track",
    access=Access.read(unscoped="the device must be one the caller may see (404 otherwise)"),
    summary="The GPS track of a device or rep phone over a period (history replay)",
    description="At most 20,000 fixes (evenly thinned when there are more); periods up to 31 days.",
    errors=(404, 422),
)
async def track(req: Req, query: TrackQuery) -> Track:
    if "\x00" in query.device_id:
        raise Unprocessable("device_id: may not contain NUL characters", field="device_id")
    if query.start.tzinfo is None or query.end.tzinfo is None:
        raise Unprocessable(
            "from/to: give a time zone offset (e.g. 2026-12-07T08:00:00Z)", field="from"
        )
    if not query.start < query.end:
        raise Unprocessable("to: must be after from", field="to")
    if (query.end - query.start).total_seconds() > 31 * 86400:
        raise Unprocessable("to: a replay covers at most 31 days", field="to")
    visible, params = device_clause(req.user, sql.Identifier("d", "device_id"))
    async with req.connection() as conn:
        found = await (
            await conn.execute(
                sql.SQL("SELECT 1 FROM device d WHERE d.device_id = %s AND {}").format(visible),
                [query.device_id, *params],
            )
        ).fetchone()
        if found is None:
            raise NotFound(f"no device {query.device_id[:80]!r}", field="device_id")
        rows = await (
            await conn.execute(
                "WITH f AS (SELECT time, lon, lat, speed_mps, row_number() OVER (ORDER BY time) AS n,"
                " count(*) OVER () AS total FROM gps_fix"
                " WHERE device_id = %s AND time >= %s AND time < %s)"
                " SELECT (extract(epoch FROM time) * 1000)::bigint, lon, lat, speed_mps, total FROM f"
                " WHERE total <= %s OR n %% ceil(total::float8 / %s)::bigint = 0 ORDER BY time",
                [query.device_id, query.start, query.end, MAX_TRACK_POINTS, MAX_TRACK_POINTS],
            )
        ).fetchall()
    return Track(
        query.device_id,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        bool(rows) and rows[0][4] > MAX_TRACK_POINTS,
    )


# --------------------------------------------------------------------------- global search

SEARCH_TYPES = (*DOCUMENTS, "devices")


class SearchQuery(msgspec.Struct, frozen=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="search text")]
    types: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=200,
                pattern=r"^[a-z_]+(,[a-z_]+)*$",
                description="comma-separated record types (default all): "
                + ", ".join(SEARCH_TYPES),
            ),
        ]
        | None
    ) = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=50, description="hits per type")] = 5


class SearchHit(msgspec.Struct, frozen=True):
    type: str
    id: str
    label: str
    detail: str
    score: float


class SearchResult(msgspec.Struct, frozen=True):
    items: list[SearchHit]


# a branch of crm.search's statement: (type, id, label, detail, score)
_DEVICE_SEARCH = """
(SELECT 'devices'::text, d.device_id::text, coalesce(d.name, d.device_id)::text,
       coalesce(d.kind, '')::text,
       (CASE WHEN doc ILIKE %s THEN 1.0 ELSE word_similarity(%s, doc) END)::float8 AS score
FROM device d, LATERAL (SELECT coalesce(d.name, '') || ' ' || d.device_id AS doc) x
WHERE (doc %%> %s OR doc ILIKE %s) AND {visible}
ORDER BY score DESC, d.device_id LIMIT {limit})
"""


@routes.get(
    "/console/api/search",
    access=Access.read(unscoped="every type's query carries the caller's record-level scope"),
    summary="Global search: accounts, contacts, leads, opportunities, work orders and devices",
    description="Typo-tolerant (trigram word similarity) and ranked, exact substrings first; "
    "only records the caller may open are returned. 503 when a search takes too long.",
    errors=(503,),
)
async def search(req: Req, query: SearchQuery) -> SearchResult:
    if "\x00" in query.q or not query.q.strip():
        raise Unprocessable("q: give some text to search for", field="q")
    types = query.types.split(",") if query.types else list(SEARCH_TYPES)
    unknown = [t for t in types if t not in SEARCH_TYPES]
    if unknown:
        raise Unprocessable(f"types: unknown record type {unknown[0][:40]!r}", field="types")
    text = query.q.strip()
    also: list[tuple[sql.Composable, list[Any]]] = []
    if "devices" in types:  # in the same statement as the CRM's records
        visible, params = device_clause(req.user, sql.Identifier("d", "device_id"))
        like = like_pattern(text)
        also.append(
            (
                sql.SQL(_DEVICE_SEARCH).format(visible=visible, limit=sql.Literal(query.limit)),
                [like, text, text, like, *params],
            )
        )
    # lag-tolerant: a replica; autocommit: crm.search sends its settings with each statement
    async with req.read_connection() as conn:
        found = await crm_search(
            conn, req.user, text, [t for t in types if t in DOCUMENTS], query.limit, also
        )
    hits = [SearchHit(h.type, h.id, h.label, h.detail, h.score) for h in found]
    hits.sort(key=lambda h: -h.score)
    return SearchResult(hits)


# Last: the catch-all of the front end's files.
@routes.get(
    "/console/{path:.+}",
    access=Access.public(_FILES),
    summary="The console's static files",
    content_type="application/octet-stream",
)
async def static_file(req: Req, path: ConsoleFilePath) -> web.StreamResponse:
    return _file_response(req, _safe_file(STATIC_DIR, path.path), no_cache=True)


def setup(app: web.Application) -> None:
    live_socket.setup(app)
    routes.mount(app)
