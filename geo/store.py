"""PostgreSQL adapter of the live engine (synchronous psycopg, the gateway's connection).

Fences in, per-subject state, events, flagged fixes and visits out. Every function runs
inside the caller's transaction and never commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from geo.engine import FlaggedFix, GeoEvent
from geo.errors import GeoError
from geo.fences import Fence, circle_fence, polygon_fence
from geo.shapes import parse_geometry
from geo.visits import CheckIn, CheckOut, VisitAction

log = logging.getLogger(__name__)

FENCES_SQL = """
    SELECT id, kind, ST_AsGeoJSON(geom)::json, radius_m, dwell_s, account_id, device_id,
           rep_id, name
    FROM geofences WHERE active ORDER BY id
"""


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def fence_from_row(row: Sequence[Any]) -> Fence:
    fid, kind, geojson, radius_m, dwell_s, account_id, device_id, rep_id, name = row
    links: dict[str, Any] = {
        "name": name or "",
        "dwell_s": dwell_s,
        "account_id": None if account_id is None else str(account_id),
        "device_id": device_id,
        "rep_id": None if rep_id is None else str(rep_id),
    }
    if isinstance(geojson, str):
        geojson = json.loads(geojson)
    if kind == "circle":
        lon, lat = geojson["coordinates"][:2]
        return circle_fence(str(fid), float(lon), float(lat), float(radius_m), **links)
    return polygon_fence(str(fid), parse_geometry(geojson, field=f"geofences[{fid}]"), **links)


def load_fences(conn: psycopg.Connection) -> list[Fence]:
    fences = []
    for row in conn.execute(FENCES_SQL).fetchall():
        try:
            fences.append(fence_from_row(row))
        except GeoError as exc:  # a row written by hand around the API: skip, say so
            log.error("geofence %s cannot be evaluated and is skipped: %s", row[0], exc)
    return fences


def fence_revision(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT revision FROM geo_fence_revision WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def load_states(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    return {
        sid: state for sid, state in conn.execute("SELECT subject_id, state FROM geo_subject_state")
    }


def save_states(conn: psycopg.Connection, states: dict[str, dict[str, Any]]) -> None:
    if not states:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO geo_subject_state (subject_id, state, updated_at) VALUES (%s, %s, now())
               ON CONFLICT (subject_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()""",
            [(sid, Jsonb(state)) for sid, state in states.items()],
        )


def insert_events(
    conn: psycopg.Connection, events: Iterable[GeoEvent], account_of: dict[str, int | None]
) -> None:
    rows = [
        (
            e.subject_id,
            int(e.fence_id),
            e.kind.value,
            _ts(e.at_ms),
            e.lon,
            e.lat,
            None if e.entered_ms is None else _ts(e.entered_ms),
            account_of.get(e.fence_id),
        )
        for e in events
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO geo_events (subject_id, fence_id, kind, at, lon, lat, entered_at, account_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                rows,
            )


def insert_flagged(conn: psycopg.Connection, flagged: Iterable[FlaggedFix]) -> None:
    rows = [(f.subject_id, _ts(f.t_ms), f.reason.value, f.lon, f.lat) for f in flagged]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO geo_flagged_fixes (subject_id, time, reason, lon, lat)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                rows,
            )


class VisitHooks(Protocol):
    """What a visit means to the rest of the product, supplied by the composition root
    (crm_sync: the activity on the account's timeline, the work orders started and done).
    Both run inside the batch's transaction and must be idempotent per visit."""

    def checked_in(
        self,
        conn: psycopg.Connection,
        *,
        visit_id: int,
        account_id: int,
        rep_id: int | None,
        arrived_at: datetime,
    ) -> None: ...

    def completed(
        self,
        conn: psycopg.Connection,
        *,
        visit_id: int,
        account_id: int,
        rep_id: int | None,
        arrived_at: datetime,
        departed_at: datetime,
        device_id: str,
    ) -> int | None:
        """Returns the id of the activity that records the visit, if one was logged."""


class NoVisitHooks:
    """Visits are recorded in geo's tables only."""

    def checked_in(self, conn: psycopg.Connection, **_: Any) -> None:
        return None

    def completed(self, conn: psycopg.Connection, **_: Any) -> int | None:
        return None


def apply_visits(
    conn: psycopg.Connection,
    actions: Iterable[VisitAction],
    hooks: VisitHooks | None = None,
) -> list[int]:
    """Open visits on check-in, close them on check-out, telling `hooks` of both.

    Returns the ids of the visits completed here.
    """
    hooks = hooks or NoVisitHooks()
    completed: list[int] = []
    for a in actions:
        if isinstance(a, CheckIn):
            opened = conn.execute(
                """INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at, checked_in_at)
                   SELECT %s, %s, %s, (SELECT user_id FROM geo_device_rep WHERE device_id = %s), %s, %s
                   WHERE EXISTS (SELECT 1 FROM accounts WHERE id = %s)
                   ON CONFLICT (subject_id, fence_id, arrived_at) DO NOTHING
                   RETURNING id, rep_id""",
                (
                    a.subject_id,
                    int(a.fence_id),
                    a.account_id,
                    a.subject_id,
                    _ts(a.arrived_ms),
                    _ts(a.checked_in_ms),
                    a.account_id,
                ),
            ).fetchone()
            if opened is not None:  # a replayed check-in opens nothing and starts nothing
                hooks.checked_in(
                    conn,
                    visit_id=int(opened[0]),
                    account_id=a.account_id,
                    rep_id=opened[1],
                    arrived_at=_ts(a.arrived_ms),
                )
        elif isinstance(a, CheckOut):
            row = conn.execute(
                """UPDATE visits SET departed_at = %s, duration_s = %s, status = 'completed'
                   WHERE subject_id = %s AND fence_id = %s AND arrived_at = %s AND status = 'open'
                   RETURNING id, rep_id""",
                (
                    _ts(a.departed_ms),
                    a.duration_s,
                    a.subject_id,
                    int(a.fence_id),
                    _ts(a.arrived_ms),
                ),
            ).fetchone()
            if row is None:
                continue  # the stay never reached the visit threshold
            visit_id, rep_id = int(row[0]), row[1]
            activity_id = hooks.completed(
                conn,
                visit_id=visit_id,
                account_id=a.account_id,
                rep_id=rep_id,
                arrived_at=_ts(a.arrived_ms),
                departed_at=_ts(a.departed_ms),
                device_id=a.subject_id,
            )
            if activity_id is not None:
                conn.execute(
                    "UPDATE visits SET activity_id = %s WHERE id = %s", (activity_id, visit_id)
                )
            completed.append(visit_id)
    return completed
