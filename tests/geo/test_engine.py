"""Scripted tracks through the live engine: each scenario asserts the exact events."""

from __future__ import annotations

import json
import random

import pytest

from geo.engine import Engine, EngineConfig, EventKind, FlagReason, GeoEvent
from geo.fences import Fence, circle_fence, polygon_fence
from geo.shapes import parse_geometry
from tests.geo.catalogue import SITE_LAT, SITE_LON, offset, square_m
from tests.geo.tracks import Fix, at, columns, drive, stay, t_ms

ENTER, EXIT, DWELL = EventKind.ENTER, EventKind.EXIT, EventKind.DWELL


def site() -> Fence:
    return circle_fence("site", SITE_LON, SITE_LAT, 100.0)


def run(
    fences: list[Fence], fixes: list[Fix], subject: str = "rep-1", **cfg: float
) -> tuple[Engine, list[GeoEvent]]:
    engine = Engine(fences, EngineConfig(**cfg))
    out = engine.ingest(subject, *columns(fixes))
    events = out.events + engine.flush().events
    return engine, events


def summary(events: list[GeoEvent]) -> list[tuple[str, EventKind, int]]:
    return [(e.fence_id, e.kind, e.at_ms) for e in events]


def assert_position(event: GeoEvent, east_m: float, north_m: float = 0.0) -> None:
    lon, lat = offset(east_m, north_m)
    assert event.lon == pytest.approx(lon, abs=1e-9)
    assert event.lat == pytest.approx(lat, abs=1e-9)


def long_stay() -> list[Fix]:
    return (
        drive(0, (-600, 0), (0, 0), speed_mps=10)  # first INSIDE fix at t=55 (50 m west)
        + stay(60, 660, 0)
        + drive(660, (0, 0), (600, 0), speed_mps=10)  # first OUTSIDE fix at t=675 (150 m east)
        + stay(720, 900, 600)
    )


LONG_STAY_EVENTS = [
    ("site", ENTER, t_ms(55)),
    ("site", DWELL, t_ms(360)),
    ("site", EXIT, t_ms(675)),
]


def test_long_stay_gives_enter_at_arrival_dwell_after_five_minutes_and_exit_at_departure() -> None:
    _, events = run([site()], long_stay())
    assert summary(events) == LONG_STAY_EVENTS
    assert_position(events[0], -50)
    assert_position(events[1], 0)
    assert_position(events[2], 150)
    assert all(e.subject_id == "rep-1" for e in events)


def test_rep_passing_by_without_stopping_produces_no_event() -> None:
    fixes = drive(0, (-600, 30), (600, 30), speed_mps=15) + stay(80, 400, 600, 30)
    engine, events = run([site()], fixes)
    assert events == []
    assert engine.tracks("rep-1") == {}


def test_jitter_at_the_boundary_within_accuracy_does_not_flap() -> None:
    jitter = [at(600 + 10 * k, 92 if k % 2 else 108, accuracy_m=10) for k in range(60)]
    fixes = stay(0, 600, 0) + jitter + stay(1200, 1400, 300)
    _, events = run([site()], fixes)
    assert summary(events) == [
        ("site", ENTER, t_ms(0)),
        ("site", DWELL, t_ms(300)),
        ("site", EXIT, t_ms(1200)),
    ]


def test_jitter_across_the_boundary_shorter_than_the_minimum_times_is_debounced() -> None:
    outside = [at(10 * k, 80 if k % 2 else 120, accuracy_m=3) for k in range(60)]
    _, events = run([site()], outside)
    assert events == []
    inside = stay(0, 300, 0) + [
        at(300 + 10 * k, 80 if k % 2 else 120, accuracy_m=3) for k in range(60)
    ]
    _, events = run([site()], inside, dwell_s=10_000)
    assert summary(events) == [("site", ENTER, t_ms(0))]


def test_overlapping_fences_each_get_their_own_events() -> None:
    a = site()
    b = polygon_fence("b", parse_geometry(square_m(150, 0, 100)))  # x from 50 to 250 m
    fixes = stay(0, 120, -50) + stay(120, 300, 75) + stay(300, 480, 200) + stay(480, 700, 500)
    _, events = run([a, b], fixes)
    assert summary(events) == [
        ("site", ENTER, t_ms(0)),
        ("b", ENTER, t_ms(120)),
        ("site", EXIT, t_ms(300)),
        ("b", DWELL, t_ms(420)),
        ("b", EXIT, t_ms(480)),
    ]


def test_outbox_replay_after_being_offline_gives_the_events_of_the_offline_period() -> None:
    fixes = long_stay()
    live = [f for f in fixes if f[0] < t_ms(300)]
    offline = [f for f in fixes if f[0] >= t_ms(300)]
    engine = Engine([site()])
    events = engine.ingest("rep-1", *columns(live)).events
    # the agent comes back and replays its outbox oldest first, in batches of 8 fixes
    for k in range(0, len(offline), 8):
        events += engine.ingest("rep-1", *columns(offline[k : k + 8])).events
    events += engine.flush().events
    assert summary(events) == LONG_STAY_EVENTS


def test_batches_shuffled_within_the_reorder_window_give_the_same_events() -> None:
    fixes = long_stay()
    batches = [fixes[k : k + 6] for k in range(0, len(fixes), 6)]
    # a shared subscription hands consecutive batches to different workers: swap pairs,
    # and shuffle the fixes inside each batch
    rng = random.Random(7)
    delivered: list[list[Fix]] = []
    for k in range(0, len(batches), 2):
        delivered += batches[k : k + 2][::-1]
    engine = Engine([site()])
    events: list[GeoEvent] = []
    for batch in delivered:
        batch = batch[:]
        rng.shuffle(batch)
        events += engine.ingest("rep-1", *columns(batch)).events
    events += engine.flush().events
    assert summary(events) == LONG_STAY_EVENTS


def test_fix_older_than_the_watermark_is_flagged_late_and_fires_nothing() -> None:
    engine, events = run([site()], stay(0, 200, 600))
    assert events == []
    out = engine.ingest("rep-1", *columns(stay(50, 120, 0)))
    out.extend(engine.flush())
    assert out.events == []
    assert [f.reason for f in out.flagged] == [FlagReason.LATE] * 7


def test_restart_in_the_middle_of_a_dwell_resumes_from_the_persisted_state() -> None:
    fixes = long_stay()
    first = [f for f in fixes if f[0] < t_ms(200)]
    second = [f for f in fixes if f[0] >= t_ms(200)]
    before = Engine([site()])
    events = before.ingest("rep-1", *columns(first)).events
    snapshot = json.loads(json.dumps(before.export_state("rep-1")))
    assert snapshot["buffer"], "fixes still in the reorder window are part of the state"
    del before  # the gateway restarts
    after = Engine([site()])
    after.import_state("rep-1", snapshot)
    events += after.ingest("rep-1", *columns(second)).events
    events += after.flush().events
    assert summary(events) == LONG_STAY_EVENTS


def test_restart_after_the_enter_was_emitted_does_not_repeat_it() -> None:
    fixes = long_stay()
    first = [f for f in fixes if f[0] < t_ms(330)]
    before = Engine([site()])
    events = before.ingest("rep-1", *columns(first)).events
    assert summary(events) == [("site", ENTER, t_ms(55))]
    after = Engine([site()])
    after.import_state("rep-1", json.loads(json.dumps(before.export_state("rep-1"))))
    rest = after.ingest("rep-1", *columns([f for f in fixes if f[0] >= t_ms(330)])).events
    rest += after.flush().events
    assert summary(rest) == LONG_STAY_EVENTS[1:]


def test_fixes_with_a_huge_accuracy_radius_are_flagged_and_fire_nothing() -> None:
    fixes = stay(0, 600, 0, accuracy_m=500)
    engine = Engine([site()])
    out = engine.ingest("rep-1", *columns(fixes))
    out.extend(engine.flush())
    assert out.events == []
    assert [f.reason for f in out.flagged] == [FlagReason.INACCURATE] * len(fixes)
    assert engine.tracks("rep-1") == {}


def test_an_impossible_speed_jump_into_a_fence_is_flagged_and_fires_nothing() -> None:
    fixes = stay(0, 100, 5000) + stay(100, 140, 0) + stay(140, 400, 5000)
    engine = Engine([site()])
    out = engine.ingest("rep-1", *columns(fixes))
    out.extend(engine.flush())
    assert out.events == []
    assert [(f.reason, f.t_ms) for f in out.flagged] == [
        (FlagReason.SPEED_JUMP, t_ms(100)),
        (FlagReason.SPEED_JUMP, t_ms(110)),
        (FlagReason.SPEED_JUMP, t_ms(120)),
        (FlagReason.SPEED_JUMP, t_ms(130)),
    ]


def test_duplicate_fixes_are_flagged_and_change_nothing() -> None:
    fixes = long_stay()
    engine = Engine([site()])
    out = engine.ingest("rep-1", *columns(fixes + fixes[10:40]))
    out.extend(engine.flush())
    assert summary(out.events) == LONG_STAY_EVENTS
    assert [f.reason for f in out.flagged] == [FlagReason.DUPLICATE] * 30


def test_subjects_are_independent_in_one_batch() -> None:
    engine = Engine([site()])
    a = engine.subject_index("a")
    b = engine.subject_index("b")
    fa, fb = long_stay(), stay(0, 900, 800)
    t, x, y, acc = columns(fa + fb)
    subjects = [a] * len(fa) + [b] * len(fb)
    import numpy as np

    events = engine.ingest_arrays(np.array(subjects), t, x, y, acc).events + engine.flush().events
    assert [(e.subject_id, e.kind) for e in events] == [("a", ENTER), ("a", DWELL), ("a", EXIT)]


def test_removing_a_fence_ends_its_tracks_without_events() -> None:
    engine = Engine([site()])
    engine.ingest("rep-1", *columns(stay(0, 100, 0)))
    assert engine.tracks("rep-1") == {}  # nothing committed yet: all in the reorder window
    assert engine.buffered() == 10
    engine.flush()
    assert set(engine.tracks("rep-1")) == {"site"}
    engine.set_fences([])
    assert engine.tracks("rep-1") == {}
    assert engine.ingest("rep-1", *columns(stay(400, 800, 600))).events == []
