"""The live engine against the real PostGIS: events, visits, CRM activities, restarts.

Each test works inside one transaction that is rolled back at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from crm_sync.loop import CrmVisitHooks
from geo.engine import EventKind
from geo.live import GeoStage, LiveGeo
from telemetry.contracts import Fix
from tests.geo.catalogue import SITE_LAT, SITE_LON
from tests.geo.tracks import Fix as TrackFix
from tests.geo.tracks import drive, stay, t_ms

pytestmark = pytest.mark.integration


@pytest.fixture
def tx(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    yield db
    db.rollback()


def visit_track() -> list[TrackFix]:
    return (
        drive(0, (-600, 0), (0, 0), speed_mps=10)
        + stay(60, 900, 0)
        + drive(900, (0, 0), (600, 0), speed_mps=10)  # first OUTSIDE fix at t=915
        + stay(960, 1200, 600)
    )


def as_fixes(track: list[TrackFix]) -> list[Fix]:
    return [Fix(t, lon, lat, acc, None, None) for t, lon, lat, acc in track]


def make_site(conn: psycopg.Connection, dwell_s: float = 600) -> tuple[int, int, int, str]:
    """An account with a site fence (dwell = the visit threshold), a rep and their phone."""
    tag = uuid.uuid4().hex[:8]
    rep_id = conn.execute(
        "INSERT INTO users (email, name, role) VALUES (%s, 'Rep', 'rep') RETURNING id",
        (f"rep{tag}@x.test",),
    ).fetchone()[0]  # type: ignore[index]
    account_id = conn.execute(
        """INSERT INTO accounts (name, location)
           VALUES (%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id""",
        (f"Acme {tag}", SITE_LON, SITE_LAT),
    ).fetchone()[0]  # type: ignore[index]
    fence_id = conn.execute(
        """INSERT INTO geofences (name, kind, geom, radius_m, dwell_s, account_id, auto)
           SELECT 'site', 'circle', location, 100, %s, id, true FROM accounts WHERE id = %s
           RETURNING id""",
        (dwell_s, account_id),
    ).fetchone()[0]  # type: ignore[index]
    device_id = f"phone-{tag}"
    conn.execute("INSERT INTO geo_device_rep VALUES (%s, %s)", (device_id, rep_id))
    return account_id, rep_id, fence_id, device_id


def feed(
    live: LiveGeo, conn: psycopg.Connection, device_id: str, track: list[TrackFix], size: int = 12
) -> list[tuple[str, int]]:
    events = []
    fixes = as_fixes(track)
    for k in range(0, len(fixes), size):
        events += [
            (e.kind.value, e.at_ms) for e in live.on_fixes(conn, device_id, fixes[k : k + size])
        ]
        live.committed()
    return events


EXPECTED = [("enter", t_ms(55)), ("dwell", t_ms(660)), ("exit", t_ms(915))]


def test_a_visit_becomes_events_a_completed_visit_and_a_crm_activity(
    tx: psycopg.Connection,
) -> None:
    account_id, rep_id, _, device = make_site(tx)
    live = LiveGeo(visit_hooks=CrmVisitHooks())
    assert feed(live, tx, device, visit_track()) == EXPECTED
    rows = tx.execute(
        "SELECT kind, (extract(epoch FROM at) * 1000)::bigint, account_id FROM geo_events WHERE subject_id = %s ORDER BY at",
        (device,),
    ).fetchall()
    assert rows == [(k, t, account_id) for k, t in EXPECTED]
    visit = tx.execute(
        """SELECT status, rep_id, (extract(epoch FROM arrived_at) * 1000)::bigint,
                  (extract(epoch FROM departed_at) * 1000)::bigint, duration_s, activity_id
           FROM visits WHERE subject_id = %s""",
        (device,),
    ).fetchall()
    assert len(visit) == 1
    status, visit_rep, arrived, departed, duration_s, activity_id = visit[0]
    assert (status, visit_rep, arrived, departed) == ("completed", rep_id, t_ms(55), t_ms(915))
    assert duration_s == pytest.approx(860.0)
    act = tx.execute(
        "SELECT account_id, owner_id, type, status, start_at, end_at, source FROM activities WHERE id = %s",
        (activity_id,),
    ).fetchone()
    assert act is not None
    assert act[:4] == (account_id, rep_id, "meeting", "done")
    assert (act[5] - act[4]).total_seconds() == pytest.approx(860.0)
    assert act[6] == "geo"
    last_visit = tx.execute(
        "SELECT last_visit_at FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()
    assert last_visit is not None and last_visit[0] == act[5]


def test_a_stay_shorter_than_the_visit_threshold_logs_no_visit(tx: psycopg.Connection) -> None:
    _, _, _, device = make_site(tx, dwell_s=3600)
    live = LiveGeo(visit_hooks=CrmVisitHooks())
    assert [k for k, _ in feed(live, tx, device, visit_track())] == ["enter", "exit"]
    assert tx.execute(
        "SELECT count(*) FROM visits WHERE subject_id = %s", (device,)
    ).fetchone() == (0,)


def test_a_gateway_restart_in_the_middle_of_a_dwell_resumes_from_the_database(
    tx: psycopg.Connection,
) -> None:
    _, _, _, device = make_site(tx)
    track = visit_track()
    first = [f for f in track if f[0] < t_ms(400)]
    rest = [f for f in track if f[0] >= t_ms(400)]
    events = feed(LiveGeo(visit_hooks=CrmVisitHooks()), tx, device, first)
    assert events == EXPECTED[:1]
    events += feed(
        LiveGeo(visit_hooks=CrmVisitHooks()), tx, device, rest
    )  # a new process: state comes from geo_subject_state
    assert events == EXPECTED
    assert tx.execute("SELECT status FROM visits WHERE subject_id = %s", (device,)).fetchall() == [
        ("completed",)
    ]


def test_a_rolled_back_batch_leaves_the_engine_as_the_database_has_it(
    tx: psycopg.Connection,
) -> None:
    _, _, _, device = make_site(tx)
    track = as_fixes(visit_track())
    live = LiveGeo(visit_hooks=CrmVisitHooks())
    live.on_fixes(tx, device, track[:20])
    live.committed()
    tx.execute("SAVEPOINT before_batch")
    assert [e.kind for e in live.on_fixes(tx, device, track[20:60])] == [EventKind.ENTER]
    tx.execute("ROLLBACK TO SAVEPOINT before_batch")
    live.rollback()
    events = live.on_fixes(tx, device, track[20:60])
    assert [(e.kind, e.at_ms) for e in events] == [(EventKind.ENTER, t_ms(55))]


def test_new_geofences_are_picked_up_without_a_restart(tx: psycopg.Connection) -> None:
    live = LiveGeo(visit_hooks=CrmVisitHooks())
    live.load(tx)
    _, _, _, device = make_site(tx)
    assert feed(live, tx, device, visit_track()) == EXPECTED


def test_the_gateway_stage_reads_new_gps_messages(tx: psycopg.Connection) -> None:
    from gateway.pipeline import NewMessages
    from telemetry.contracts import GpsBatch

    _, _, _, device = make_site(tx)
    stage = GeoStage(visit_hooks=CrmVisitHooks())
    new = NewMessages()
    new.gps.append((device, GpsBatch(v=1, seq=1, fixes=as_fixes(visit_track()))))
    stage.handle(tx, new)
    stage.committed()
    assert [(e.kind.value, e.at_ms) for e in stage.last_events] == EXPECTED


def test_a_device_gone_quiet_gets_its_buffered_exit_by_the_wall_clock(
    tx: psycopg.Connection,
) -> None:
    from gateway.pipeline import NewMessages
    from telemetry.contracts import GpsBatch

    _, _, _, device = make_site(tx)
    track = [f for f in visit_track() if f[0] <= t_ms(980)]  # the phone goes silent at 980 s
    clock = [1000.0]
    stage = GeoStage(clock=lambda: clock[0], visit_hooks=CrmVisitHooks())
    new = NewMessages()
    new.gps.append((device, GpsBatch(v=1, seq=1, fixes=as_fixes(track))))
    stage.handle(tx, new)
    stage.committed()
    assert [e.kind.value for e in stage.last_events] == ["enter", "dwell"]  # exit still buffered
    clock[0] += 60.0
    stage.handle(tx, NewMessages())
    assert stage.last_events == []  # quiet for less than the window
    clock[0] += 61.0
    stage.handle(tx, NewMessages())
    stage.committed()
    assert [(e.kind.value, e.at_ms) for e in stage.last_events] == [("exit", t_ms(915))]
