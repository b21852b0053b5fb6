"""PostgreSQL adapter for the HTTP API (async psycopg): territories, fences, history.

Territories live in crm's `territories` table; geo reads and writes their geometry and
the accounts' territory_id. Every function runs in the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, errors, sql
from shapely.geometry import MultiPolygon

from geo.errors import InvalidGeometry
from geo.history import Point3
from geo.shapes import as_multipolygon
from geo.territories import BalanceRow, Move, Territory, assign_points, moves

Conn = AsyncConnection[Any]


async def load_territories(conn: Conn) -> list[Territory]:
    from shapely.geometry import shape

    rows = await (
        await conn.execute(
            "SELECT id, name, ST_AsGeoJSON(geom) FROM territories WHERE geom IS NOT NULL ORDER BY id"
        )
    ).fetchall()
    return [Territory(int(i), n, as_multipolygon(shape(json.loads(g)))) for i, n, g in rows]


async def export_territories(conn: Conn, only: list[int] | None = None) -> list[tuple[Any, ...]]:
    """(id, name, region, GeoJSON text of the geometry or None, accounts) per territory;
    `only`: just these territory ids (None: all)."""
    rows = await (
        await conn.execute(
            """SELECT id, name, region, ST_AsGeoJSON(geom),
                      (SELECT count(*) FROM accounts a WHERE a.territory_id = t.id)
               FROM territories t WHERE (%s::bigint[] IS NULL OR t.id = ANY(%s))
               ORDER BY id""",
            (only, only),
        )
    ).fetchall()
    return [tuple(r) for r in rows]


async def import_territories(
    conn: Conn, territories: list[tuple[str, str | None, MultiPolygon]]
) -> list[dict[str, Any]]:
    """Upsert territories (name, region, geometry) by name, all validated beforehand."""
    out = []
    for i, (name, region, geom) in enumerate(territories):
        try:
            cur = await conn.execute(
                """INSERT INTO territories (name, region, geom)
                   VALUES (%s, %s, ST_GeomFromText(%s, 4326)::geography)
                   ON CONFLICT (name) DO UPDATE SET geom = EXCLUDED.geom,
                       region = coalesce(EXCLUDED.region, territories.region), updated_at = now()
                   RETURNING id, (xmax = 0)""",
                (name, region, geom.wkt),
            )
        except (errors.DataError, errors.InternalError_) as exc:
            # PostGIS refuses what shapely's plane accepts (an edge between antipodes).
            field = f"features[{i}].geometry"
            raise InvalidGeometry(f"{field}: {exc.diag.message_primary}", field=field) from None
        row = await cur.fetchone()
        assert row is not None
        out.append({"id": int(row[0]), "name": name, "created": bool(row[1])})
    return out


async def reassign_accounts(conn: Conn, *, dry_run: bool = False) -> list[Move]:
    """Assign every located account to the territory containing its site; report moves."""
    territories = await load_territories(conn)
    rows = await (
        await conn.execute(
            "SELECT id, ST_X(location::geometry), ST_Y(location::geometry), territory_id"
            " FROM accounts WHERE location IS NOT NULL"
        )
    ).fetchall()
    current = {int(r[0]): (None if r[3] is None else int(r[3])) for r in rows}
    assigned = assign_points(territories, [(int(r[0]), float(r[1]), float(r[2])) for r in rows])
    changed = moves(current, assigned)
    if changed and not dry_run:
        await conn.execute(
            """UPDATE accounts a SET territory_id = m.tid, updated_at = now(), version = version + 1
               FROM unnest(%s::bigint[], %s::bigint[]) AS m(id, tid) WHERE a.id = m.id""",
            ([m.account_id for m in changed], [m.to_territory for m in changed]),
        )
    return changed


async def balance(conn: Conn, only: list[int] | None = None) -> list[BalanceRow]:
    """Per territory (and the unassigned accounts); `only`: just these territories, and
    no unassigned row."""
    rows = await (
        await conn.execute(
            """
            WITH acc AS (
                SELECT territory_id, count(*) AS n, coalesce(sum(annual_revenue), 0) AS revenue
                FROM accounts GROUP BY territory_id
            ), wo AS (
                SELECT a.territory_id, count(*) AS n
                FROM work_orders w JOIN accounts a ON a.id = w.account_id
                WHERE w.status NOT IN ('done', 'cancelled') GROUP BY a.territory_id
            )
            SELECT t.id, t.name, coalesce(acc.n, 0), coalesce(acc.revenue, 0), coalesce(wo.n, 0)
            FROM territories t
            LEFT JOIN acc ON acc.territory_id = t.id
            LEFT JOIN wo ON wo.territory_id = t.id
            WHERE %(only)s::bigint[] IS NULL OR t.id = ANY(%(only)s)
            UNION ALL
            SELECT NULL, '(unassigned)', coalesce(acc.n, 0), coalesce(acc.revenue, 0),
                   coalesce((SELECT n FROM wo WHERE territory_id IS NULL), 0)
            FROM (SELECT 1) one LEFT JOIN acc ON acc.territory_id IS NULL
            WHERE %(only)s::bigint[] IS NULL
            ORDER BY 1 NULLS LAST
            """,
            {"only": only},
        )
    ).fetchall()
    return [BalanceRow(r[0], r[1], int(r[2]), float(r[3]), int(r[4])) for r in rows]


async def coverage(
    conn: Conn, start: datetime, end: datetime, only: list[int] | None = None
) -> list[dict[str, Any]]:
    """Per territory (`only`: just these): accounts, accounts with a completed visit in
    [start, end), visits."""
    rows = await (
        await conn.execute(
            """
            SELECT t.id, t.name, count(DISTINCT a.id), count(DISTINCT v.account_id), count(v.id)
            FROM territories t
            LEFT JOIN accounts a ON a.territory_id = t.id
            LEFT JOIN visits v ON v.account_id = a.id AND v.status = 'completed'
                 AND v.arrived_at >= %s AND v.arrived_at < %s
            WHERE %s::bigint[] IS NULL OR t.id = ANY(%s)
            GROUP BY t.id, t.name ORDER BY t.id
            """,
            (start, end, only, only),
        )
    ).fetchall()
    return [
        {
            "territory_id": r[0],
            "name": r[1],
            "accounts": r[2],
            "visited_accounts": r[3],
            "visits": r[4],
            "coverage": (r[3] / r[2]) if r[2] else None,
        }
        for r in rows
    ]


# ---------------------------------------------------------------------- geofences

FENCE_COLUMNS = "id, name, kind, ST_AsGeoJSON(geom)::json, radius_m, dwell_s, account_id, device_id, rep_id, auto, active"


def fence_dict(r: Any) -> dict[str, Any]:
    keys = (
        "id",
        "name",
        "kind",
        "geometry",
        "radius_m",
        "dwell_s",
        "account_id",
        "device_id",
        "rep_id",
        "auto",
        "active",
    )
    return dict(zip(keys, r, strict=True))


async def list_fences(
    conn: Conn,
    account_id: int | None,
    visible: tuple[sql.Composable, list[Any]],
) -> list[dict[str, Any]]:
    """Fences (of one account), restricted by `visible`, a condition on the row `g`."""
    cond, params = visible
    q = sql.SQL(
        "SELECT {} FROM geofences g WHERE (%s::bigint IS NULL OR g.account_id = %s) AND {}"
        " ORDER BY g.id LIMIT 10000"
    ).format(sql.SQL(FENCE_COLUMNS), cond)
    rows = await (await conn.execute(q, [account_id, account_id, *params])).fetchall()
    return [fence_dict(r) for r in rows]


async def get_fence(conn: Conn, fence_id: int) -> dict[str, Any] | None:
    r = await (
        await conn.execute(f"SELECT {FENCE_COLUMNS} FROM geofences WHERE id = %s", (fence_id,))
    ).fetchone()
    return None if r is None else fence_dict(r)


async def create_fence(
    conn: Conn,
    *,
    name: str,
    kind: str,
    wkt: str,
    radius_m: float | None,
    dwell_s: float | None,
    account_id: int | None,
    device_id: str | None,
    rep_id: int | None,
) -> dict[str, Any]:
    r = await (
        await conn.execute(
            f"""INSERT INTO geofences (name, kind, geom, radius_m, dwell_s, account_id, device_id, rep_id)
                VALUES (%s, %s, ST_GeomFromText(%s, 4326)::geography, %s, %s, %s, %s, %s)
                RETURNING {FENCE_COLUMNS}""",
            (name, kind, wkt, radius_m, dwell_s, account_id, device_id, rep_id),
        )
    ).fetchone()
    assert r is not None
    return fence_dict(r)


async def delete_fence(conn: Conn, fence_id: int) -> bool:
    cur = await conn.execute("DELETE FROM geofences WHERE id = %s", (fence_id,))
    return cur.rowcount > 0


async def sync_account_fences(conn: Conn, radius_m: float, dwell_s: float) -> dict[str, int]:
    """A circle fence around every located account's site; stale auto fences removed."""
    cur = await conn.execute(
        """INSERT INTO geofences (name, kind, geom, radius_m, dwell_s, account_id, auto)
           SELECT 'site: ' || a.name, 'circle', a.location, %s, %s, a.id, true
           FROM accounts a WHERE a.location IS NOT NULL
           ON CONFLICT (account_id) WHERE auto DO UPDATE
             SET geom = EXCLUDED.geom, radius_m = EXCLUDED.radius_m, dwell_s = EXCLUDED.dwell_s,
                 name = EXCLUDED.name, updated_at = now()
             WHERE NOT (geofences.geom::geometry ~= EXCLUDED.geom::geometry)
                OR geofences.radius_m IS DISTINCT FROM EXCLUDED.radius_m
                OR geofences.dwell_s IS DISTINCT FROM EXCLUDED.dwell_s""",
        (radius_m, dwell_s),
    )
    upserted = cur.rowcount
    cur = await conn.execute(
        """DELETE FROM geofences g WHERE g.auto AND NOT EXISTS
           (SELECT 1 FROM accounts a WHERE a.id = g.account_id AND a.location IS NOT NULL)"""
    )
    return {"upserted": upserted, "removed": cur.rowcount}


# ---------------------------------------------------------------------- history


async def track_points(
    conn: Conn, subject_id: str, start: datetime, end: datetime, limit: int = 100_000
) -> list[Point3]:
    rows = await (
        await conn.execute(
            """SELECT DISTINCT ON (time) (extract(epoch FROM time) * 1000)::bigint, lon, lat
               FROM gps_fix WHERE device_id = %s AND time >= %s AND time < %s
                 AND accuracy_m <= 100
               ORDER BY time LIMIT %s""",
            (subject_id, start, end, limit),
        )
    ).fetchall()
    return [(int(t), float(x), float(y)) for t, x, y in rows]


async def visit_intervals(
    conn: Conn,
    subject_id: str | None,
    start: datetime,
    end: datetime,
    visible: tuple[sql.Composable, list[Any]] = (sql.SQL("TRUE"), []),
) -> list[dict[str, Any]]:
    """Visits overlapping [start, end) (of one subject), restricted by `visible`, a
    condition on the row `v`."""
    cond, params = visible
    q = sql.SQL(
        "SELECT v.id, v.account_id, v.fence_id, v.rep_id, v.arrived_at, v.departed_at,"
        " v.duration_s, v.status, v.activity_id FROM visits v"
        " WHERE (%s::text IS NULL OR v.subject_id = %s)"
        " AND v.arrived_at < %s AND coalesce(v.departed_at, 'infinity') >= %s AND {}"
        " ORDER BY v.arrived_at LIMIT 10000"
    ).format(cond)
    rows = await (await conn.execute(q, [subject_id, subject_id, end, start, *params])).fetchall()
    keys = (
        "id",
        "account_id",
        "fence_id",
        "rep_id",
        "arrived_at",
        "departed_at",
        "duration_s",
        "status",
        "activity_id",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def events(
    conn: Conn, subject_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            """SELECT fence_id, kind, at, lon, lat, account_id FROM geo_events
               WHERE subject_id = %s AND at >= %s AND at < %s ORDER BY at, id LIMIT 10000""",
            (subject_id, start, end),
        )
    ).fetchall()
    keys = ("fence_id", "kind", "at", "lon", "lat", "account_id")
    return [dict(zip(keys, r, strict=True)) for r in rows]
