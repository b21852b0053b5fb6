"""Plans as GeoJSON (RFC 7946) for maps: one LineString per route, a Point per stop and
per dropped visit. Coordinates are (lon, lat); times are ISO-8601 UTC."""

from __future__ import annotations

from typing import Any

from routing.model import Plan, Problem


def plan_to_geojson(problem: Problem, plan: Plan, rep_id: str | None = None) -> dict[str, Any]:
    locs = {loc.id: loc for loc in problem.locations}
    reps = {r.id: r for r in problem.reps}
    visits = {v.id: v for v in problem.visits}
    features: list[dict[str, Any]] = []
    for route in plan.routes:
        if rep_id is not None and route.rep_id != rep_id:
            continue
        rep = reps.get(route.rep_id)
        if rep is None or not route.stops:
            continue
        path = [rep.start_location_id, *[s.location_id for s in route.stops], rep.end_location_id]
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[locs[p].lon, locs[p].lat] for p in path],
                },
                "properties": {
                    "kind": "route",
                    "rep_id": route.rep_id,
                    "stops": len(route.stops),
                    "distance_m": round(route.distance_m, 1),
                    "travel_s": round(route.travel_s, 1),
                    "start": problem.at(route.start_s).isoformat(),
                    "end": problem.at(route.end_s).isoformat(),
                },
            }
        )
        for seq, stop in enumerate(route.stops, start=1):
            loc = locs[stop.location_id]
            visit = visits.get(stop.visit_id)
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [loc.lon, loc.lat]},
                    "properties": {
                        "kind": "stop",
                        "rep_id": route.rep_id,
                        "sequence": seq,
                        "visit_id": stop.visit_id,
                        "title": visit.title if visit else "",
                        "eta": problem.at(stop.arrival_s).isoformat(),
                        "service_start": problem.at(stop.service_start_s).isoformat(),
                        "service_end": problem.at(stop.service_end_s).isoformat(),
                        "wait_s": round(stop.wait_s, 1),
                        "slack_s": round(stop.slack_s, 1),
                        "travel_s": round(stop.travel_s, 1),
                        "distance_m": round(stop.distance_m, 1),
                    },
                }
            )
    if rep_id is None:
        for d in plan.dropped:
            visit = visits.get(d.visit_id)
            place = locs.get(visit.location_id) if visit else None
            if place is None:
                continue
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [place.lon, place.lat]},
                    "properties": {
                        "kind": "dropped",
                        "visit_id": d.visit_id,
                        "reason": str(d.reason),
                        "message": d.message,
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}
