"""The simulated phone following `route` commands (pure: no broker)."""

from __future__ import annotations

import numpy as np

from firmware_sim.navigation import PhoneNavigator
from firmware_sim.sensors import PhoneGps, PhoneVisits
from firmware_sim.tracks import visiting_track

HOME = (4.80, 45.70)
SITES = [(4.90, 45.80), (4.85, 45.75)]
WO_SITE = (4.95, 45.70)


def _phone(now: list[float]) -> tuple[PhoneNavigator, PhoneVisits]:
    track = visiting_track(0.0, HOME, SITES, np.random.default_rng(1))
    visits = PhoneVisits(track, {s: f"site-{i}" for i, s in enumerate(SITES)})
    return PhoneNavigator(PhoneGps(track), visits, lambda: now[0]), visits


def _route(plan_id: int, *stops: tuple[float, float]) -> dict[str, object]:
    return {
        "plan_id": plan_id,
        "stops": [
            {"visit_id": f"wo:{i}", "lon": s[0], "lat": s[1], "service_s": 3600.0}
            for i, s in enumerate(stops)
        ],
    }


def test_route_drives_from_here_to_the_stop_stays_its_service_time_then_home() -> None:
    now = [100.0]
    nav, visits = _phone(now)
    ok, detail = nav.handle(_route(7, WO_SITE))
    assert ok, detail
    legs = visits.track.legs
    assert legs[0].t0_s == 100.0 and legs[0].end == WO_SITE
    assert legs[1].is_stay and legs[1].start == WO_SITE
    assert legs[1].t1_s - legs[1].t0_s == 3600.0
    assert legs[-1].start == HOME
    visits.poll(0)
    events = visits.poll(int(legs[-1].t0_s * 1000))
    assert [(k, d["site_id"]) for _t, k, d in events] == [
        ("visit.arrived", "wo:0"),
        ("visit.departed", "wo:0"),
    ]
    assert [r.visit_ids for r in nav.routes()] == [("wo:0",)]


def test_a_second_route_received_on_site_still_ends_at_home() -> None:
    now = [0.0]
    nav, visits = _phone(now)
    stay = next(leg for leg in visits.track.legs if leg.is_stay and leg.start in SITES)
    now[0] = (stay.t0_s + stay.t1_s) / 2  # the first route arrives during a site visit
    assert nav.handle(_route(1, WO_SITE))[0]
    now[0] += 60.0
    assert nav.handle(_route(2))[0]  # nothing left: drive home
    assert visits.track.legs[-1].start == HOME
    visits.poll(int(now[0] * 1000))
    assert visits.poll(int((now[0] + 86_400) * 1000)) == []


def test_a_malformed_route_is_refused_and_the_track_kept() -> None:
    nav, visits = _phone([0.0])
    before = visits.track
    ok, detail = nav.handle({"plan_id": 1, "stops": [{"visit_id": "x", "lon": "east"}]})
    assert not ok and "bad route" in detail
    ok, detail = nav.handle(_route(1, (200.0, 45.0)))
    assert not ok and "invalid place" in detail
    assert visits.track is before and nav.routes() == []
