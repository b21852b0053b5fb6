"""The database adapter: territories, accounts, devices and sensor readings as scene inputs.

Reads the CRM tables (crm/migrations c0001: `territories`, `accounts`, `opportunities`)
and the telemetry tables (telemetry/migrations t0001: `device`, `ingest_message`,
`telemetry_latest`). Device -> account links, alert tables and the day's planned route
belong to packages still being built: they are read when the expected tables/columns
exist (crm_sync's `assets`, telemetry's `alerts`, routing's plans), and otherwise left empty.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ar_viewer.asset import METRIC_CATALOGUE, sensor_from_metric, sensor_state
from ar_viewer.errors import DataUnavailable, NotFoundError
from ar_viewer.model import (
    AccountInput,
    AssetInput,
    DeviceInput,
    HeightMetric,
    LonLat,
    Polygon,
    TerritoryInput,
)
from ar_viewer.palette import ALERT_SEVERITY
from crm import tenant
from telemetry.online import last_received_sql, online_sql

_ACCOUNTS_SQL = """
    SELECT a.id::text AS id, a.name, a.currency,
           ST_X(a.location::geometry) AS lon, ST_Y(a.location::geometry) AS lat,
           a.annual_revenue::float8 AS revenue, a.health_score::float8 AS health,
           coalesce(o.open_amount, 0)::float8 AS open_pipeline
    FROM accounts a
    LEFT JOIN (
        SELECT account_id, sum(amount) AS open_amount FROM opportunities
        WHERE status = 'open' GROUP BY account_id
    ) o ON o.account_id = a.id
    WHERE a.territory_id = %s
    ORDER BY a.id
"""


def _polygons(geojson: str | None) -> tuple[Polygon, ...]:
    if not geojson:
        return ()
    g = json.loads(geojson)
    polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
    return tuple(
        tuple(tuple((float(x), float(y)) for x, y, *_ in ring) for ring in poly) for poly in polys
    )


async def _has_relation(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def load_territory(
    conn: psycopg.AsyncConnection[Any], name: str, height_metric: HeightMetric = "revenue"
) -> TerritoryInput:
    """The scene input of a territory by name. NotFoundError if there is no such territory."""
    try:
        cur = await conn.execute(
            "SELECT id, name, ST_AsGeoJSON(geom::geometry, 7) FROM territories WHERE name = %s",
            (name,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"no territory named {name!r}")
        territory_id, t_name, geojson = row
        acur = conn.cursor(row_factory=dict_row)
        await acur.execute(_ACCOUNTS_SQL, (territory_id,))
        rows = await acur.fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise DataUnavailable(
            f"CRM tables are missing (is the crm migration applied?): {exc}"
        ) from exc
    accounts = tuple(
        AccountInput(
            r["id"], r["name"], r["lon"], r["lat"], r["revenue"], r["open_pipeline"], r["health"]
        )
        for r in rows
    )
    currencies = {r["currency"] for r in rows}
    if len(currencies) == 1:
        currency = currencies.pop()
    elif currencies:
        currency = "mixed"
    else:  # no accounts: the tenant's default currency labels the (empty) revenue
        currency = await tenant.default_currency(conn)
    devices = await _load_devices(conn, territory_id)
    route = await _load_route(conn, territory_id)
    return TerritoryInput(
        t_name, _polygons(geojson), accounts, devices, route, height_metric, currency
    )


def _device_state(
    online: bool | None, readings: list[tuple[str, float]], alert: str | None = None
) -> str:
    """Worst state of a device: an active alert wins, then offline, then the latest readings."""
    if alert in ("critical", "warning"):
        return alert
    if online is False:
        return "offline"
    states = [
        sensor_state(sensor_from_metric("d", m, v))[0] for m, v in readings if m in METRIC_CATALOGUE
    ]
    if not states:
        return "unknown" if online is None else "ok"
    return max(states, key=lambda s: ALERT_SEVERITY[s])


# Devices belong to accounts through crm_sync's assets (device -> account); the worst
# active alert from the alerts table colours the marker.
_DEVICES_SQL = f"""
SELECT d.device_id, x.account_id::text, {online_sql(last_received_sql("d.device_id"))} AS online,
       coalesce(array_agg(l.metric) FILTER (WHERE l.metric IS NOT NULL), '{{}}'),
       coalesce(array_agg(l.value) FILTER (WHERE l.metric IS NOT NULL), '{{}}'),
       (SELECT CASE max(CASE al.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)
                    WHEN 2 THEN 'critical' WHEN 1 THEN 'warning' END
          FROM alerts al WHERE al.device_id = d.device_id AND al.state <> 'cleared') AS alert
FROM assets x
JOIN device d ON d.device_id = x.device_id
JOIN accounts a ON a.id = x.account_id
LEFT JOIN telemetry_latest l ON l.device_id = d.device_id
WHERE a.territory_id = %s
GROUP BY d.device_id, x.account_id
ORDER BY d.device_id
"""


async def _load_devices(
    conn: psycopg.AsyncConnection[Any], territory_id: int
) -> tuple[DeviceInput, ...]:
    if not (await _has_relation(conn, "assets") and await _has_relation(conn, "alerts")):
        return ()
    cur = await conn.execute(_DEVICES_SQL, (territory_id,))
    return tuple(
        DeviceInput(
            dev,
            acc,
            None,
            None,
            _device_state(online, list(zip(metrics, values, strict=True)), alert),
        )
        for dev, acc, online, metrics, values, alert in await cur.fetchall()
    )


async def _load_route(conn: psycopg.AsyncConnection[Any], territory_id: int) -> tuple[LonLat, ...]:
    """Today's route in the territory's latest ready plan: the stops of its busiest rep
    in visiting order (the scene draws one line; the console shows every rep's)."""
    if not await _has_relation(conn, "routing_stops"):
        return ()
    cur = await conn.execute(
        """
        WITH plan AS (
            SELECT id FROM routing_plans
            WHERE territory_id = %s AND plan_date = current_date AND status = 'ready'
            ORDER BY created_at DESC LIMIT 1
        ), busiest AS (
            SELECT rep_id FROM routing_stops WHERE plan_id = (SELECT id FROM plan)
            GROUP BY rep_id ORDER BY count(*) DESC, rep_id LIMIT 1
        )
        SELECT ST_X(a.location::geometry), ST_Y(a.location::geometry)
        FROM routing_stops r JOIN accounts a ON a.id = r.account_id
        WHERE r.plan_id = (SELECT id FROM plan) AND r.rep_id IS NOT DISTINCT FROM (SELECT rep_id FROM busiest)
          AND a.location IS NOT NULL
        ORDER BY r.seq
        """,
        (territory_id,),
    )
    return tuple((float(lon), float(lat)) for lon, lat in await cur.fetchall())


async def load_asset(conn: psycopg.AsyncConnection[Any], device_id: str) -> AssetInput:
    """The scene input of one device: its latest reading per metric become its sensors."""
    try:
        cur = await conn.execute(
            "SELECT device_id, coalesce(name, device_id), kind FROM device WHERE device_id = %s",
            (device_id,),
        )
        row = await cur.fetchone()
        if row is None or row[2] != "equipment":
            raise NotFoundError(f"no equipment device {device_id!r}")
        status = await (
            await conn.execute("SELECT " + online_sql(last_received_sql("%s")), (device_id,))
        ).fetchone()
        cur = await conn.execute(
            "SELECT metric, value FROM telemetry_latest WHERE device_id = %s ORDER BY metric",
            (device_id,),
        )
        readings = await cur.fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise DataUnavailable(f"telemetry tables are missing: {exc}") from exc
    offline = status is not None and status[0] is False
    sensors = tuple(
        sensor_from_metric(
            device_id, m, None if v is None else float(v), "offline" if offline else None
        )
        for m, v in readings
    )
    account_id = None
    if await _has_relation(conn, "assets"):
        arow = await (
            await conn.execute(
                "SELECT account_id::text FROM assets WHERE device_id = %s", (device_id,)
            )
        ).fetchone()
        account_id = arow[0] if arow else None
    return AssetInput(device_id, row[1], "pump", account_id, sensors)


async def list_territories_with_ids(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, str]]:
    try:
        cur = await conn.execute("SELECT id, name FROM territories ORDER BY name")
    except psycopg.errors.UndefinedTable as exc:
        raise DataUnavailable(f"CRM tables are missing: {exc}") from exc
    return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]
