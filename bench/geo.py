"""Live geofence evaluation: the in-process engine against one PostGIS query per fix.

10,000 geofences (half circles with radii in metres, half irregular polygons) scattered
over a region, and reps driving between sites and staying at some of them, reporting a
fix every 5 s. The engine (geo/engine.py) evaluates the stream in batches — vectorised
spatial index, speed check, per-subject debouncing state machines — and its throughput
is compared with the naive service design, an indexed PostGIS query per fix
(`ST_Contains` for polygons, `ST_DWithin` on geography for circles), measured in the
same run on a dedicated database. The two paths' containment sets are compared on the
PostGIS sample to show they judge the same fences.

    python -m bench.geo [--quick] [--fences N] [--subjects N] [--fixes N] [--seed N]

Last line: one JSON object with fixes_per_s, postgis_fixes_per_s and speedup.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table
from shapely.geometry import Polygon

from geo.engine import Engine, EngineConfig
from geo.fences import Fence, Status, circle_fence, polygon_fence
from geo.geodesy import M_PER_DEG_LAT, m_per_deg_lon
from geo.index import FenceIndex

REGION = (4.4, 51.9, 5.6, 52.7)  # lon/lat box, about 80 km x 90 km
STEP_S = 5.0


@dataclass
class Stream:
    subject: npt.NDArray[np.int64]
    t_ms: npt.NDArray[np.int64]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    acc: npt.NDArray[np.float64]


def make_fences(n: int, rng: np.random.Generator) -> list[Fence]:
    lon0, lat0, lon1, lat1 = REGION
    fences: list[Fence] = []
    for j in range(n):
        lon = float(rng.uniform(lon0, lon1))
        lat = float(rng.uniform(lat0, lat1))
        if j % 2 == 0:
            fences.append(circle_fence(f"c{j}", lon, lat, float(rng.uniform(50, 300))))
            continue
        k = int(rng.integers(5, 13))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(60, 400) * rng.uniform(0.6, 1.0, k)
        kx = float(m_per_deg_lon(lat))
        ring = [
            (lon + r * math.cos(a) / kx, lat + r * math.sin(a) / M_PER_DEG_LAT)
            for a, r in zip(angles, radii, strict=True)
        ]
        poly = Polygon(ring)
        if not poly.is_valid:
            poly = poly.convex_hull
        fences.append(polygon_fence(f"p{j}", poly))
    return fences


def make_stream(fences: list[Fence], subjects: int, fixes: int, rng: np.random.Generator) -> Stream:
    """Reps alternate: drive (8-20 m/s) to a fence, stay 2-20 min inside it (GPS noise)."""
    per_subject = fixes // subjects
    centres = np.array([f.origin for f in fences])
    t0_ms = 1_767_225_600_000
    cols: dict[str, list[Any]] = {k: [] for k in ("s", "t", "x", "y", "a")}
    for s in range(subjects):
        xs: list[npt.NDArray[np.float64]] = []
        ys: list[npt.NDArray[np.float64]] = []
        pos = centres[rng.integers(len(centres))]
        count = 0
        while count < per_subject:
            target = centres[rng.integers(len(centres))]
            # choose a nearby target most of the time: reps work a territory
            if rng.random() < 0.8:
                near = centres[np.argsort(np.abs(centres - pos).sum(axis=1))[1:40]]
                target = near[rng.integers(len(near))]
            kx = float(m_per_deg_lon(pos[1]))
            dist_m = math.hypot((target[0] - pos[0]) * kx, (target[1] - pos[1]) * M_PER_DEG_LAT)
            steps = max(1, int(dist_m / (rng.uniform(8, 20) * STEP_S)))
            f = np.arange(steps) / steps
            xs.append(pos[0] + f * (target[0] - pos[0]))
            ys.append(pos[1] + f * (target[1] - pos[1]))
            stay = int(rng.uniform(2, 20) * 60 / STEP_S)
            noise = rng.normal(0, 6, (stay, 2))
            xs.append(target[0] + noise[:, 0] / kx)
            ys.append(target[1] + noise[:, 1] / M_PER_DEG_LAT)
            count += steps + stay
            pos = target
        x = np.concatenate(xs)[:per_subject]
        y = np.concatenate(ys)[:per_subject]
        cols["s"].append(np.full(per_subject, s, dtype=np.int64))
        cols["t"].append(
            t0_ms
            + (np.arange(per_subject) * STEP_S * 1000).astype(np.int64)
            + int(rng.integers(0, 5000))
        )
        cols["x"].append(x)
        cols["y"].append(y)
        cols["a"].append(rng.uniform(3, 25, per_subject))
    s_all = np.concatenate(cols["s"])
    t_all = np.concatenate(cols["t"])
    order = np.argsort(t_all, kind="stable")  # the stream arrives roughly in time order
    return Stream(
        s_all[order],
        t_all[order],
        np.concatenate(cols["x"])[order],
        np.concatenate(cols["y"])[order],
        np.concatenate(cols["a"])[order],
    )


def run_engine(
    fences: list[Fence], stream: Stream, subjects: int, batch: int
) -> tuple[float, int, int]:
    t_build = time.perf_counter()
    engine = Engine(fences, EngineConfig())
    build_s = time.perf_counter() - t_build
    ix = np.array([engine.subject_index(f"rep-{s}") for s in range(subjects)], dtype=np.int64)
    events = flagged = 0
    t_start = time.perf_counter()
    n = len(stream.t_ms)
    for a in range(0, n, batch):
        b = min(a + batch, n)
        out = engine.ingest_arrays(
            ix[stream.subject[a:b]],
            stream.t_ms[a:b],
            stream.lon[a:b],
            stream.lat[a:b],
            stream.acc[a:b],
        )
        events += len(out.events)
        flagged += len(out.flagged)
    out = engine.flush()
    events += len(out.events)
    flagged += len(out.flagged)
    elapsed = time.perf_counter() - t_start
    Console(stderr=True).print(f"index build: {build_s:.2f} s for {len(fences)} fences")
    return n / elapsed, events, flagged


def run_postgis(
    fences: list[Fence], stream: Stream, sample: int
) -> tuple[float, list[set[str]], npt.NDArray[np.int64]]:
    import psycopg

    from fieldmesh import services
    from kernel.settings import load_settings

    settings = load_settings()
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    name = f"fm_bench_geo_{uuid.uuid4().hex[:6]}"
    dsn = services.create_database(settings, name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            conn.execute(
                """CREATE TABLE bench_fence (
                    id text PRIMARY KEY, kind text NOT NULL,
                    geom geometry(Geometry, 4326) NOT NULL,  -- polygon, or the circle's centre
                    zone geometry(Polygon, 4326) NOT NULL,   -- what the index holds
                    center geography(Point, 4326), radius_m double precision)"""
            )
            with conn.cursor().copy(
                "COPY bench_fence (id, kind, geom, zone, center, radius_m) FROM STDIN"
            ) as cp:
                for f in fences:
                    minx, miny, maxx, maxy = f.bounds
                    zone = f"SRID=4326;POLYGON(({minx} {miny},{maxx} {miny},{maxx} {maxy},{minx} {maxy},{minx} {miny}))"
                    geom = "SRID=4326;" + f.geometry.wkt
                    center = geom if f.kind == "circle" else None
                    cp.write_row((f.id, f.kind, geom, zone, center, f.radius_m))
            conn.execute("CREATE INDEX ON bench_fence USING gist (zone)")
            conn.execute("ANALYZE bench_fence")
            query = """
                SELECT id FROM bench_fence
                WHERE zone && ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)
                  AND CASE kind
                      WHEN 'circle' THEN ST_DWithin(center, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)::geography, radius_m, false)
                      ELSE ST_Contains(geom, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)) END
            """
            picks = np.linspace(0, len(stream.t_ms) - 1, sample).astype(np.int64)
            results: list[set[str]] = []
            with conn.cursor() as cur:
                cur.execute(query, {"x": 0.0, "y": 0.0}, prepare=True)
                t_start = time.perf_counter()
                for i in picks.tolist():
                    cur.execute(
                        query, {"x": float(stream.lon[i]), "y": float(stream.lat[i])}, prepare=True
                    )
                    results.append({r[0] for r in cur.fetchall()})
                elapsed = time.perf_counter() - t_start
        return sample / elapsed, results, picks
    finally:
        services.drop_database(settings, name)


def agreement(
    fences: list[Fence], stream: Stream, picks: npt.NDArray[np.int64], pg: list[set[str]]
) -> tuple[int, int, int]:
    """(fixes where both paths judge the same fences, fixes differing, fixes inside something)."""
    index = FenceIndex(fences)
    fi, fj, st = index.classify(stream.lon[picks], stream.lat[picks], np.zeros(len(picks)))
    ours: list[set[str]] = [set() for _ in picks]
    for i, j, s in zip(fi.tolist(), fj.tolist(), st.tolist(), strict=True):
        if s == Status.INSIDE:
            ours[i].add(fences[j].id)
    same = sum(1 for a, b in zip(ours, pg, strict=True) if a == b)
    inside = sum(1 for b in pg if b)
    return same, len(pg) - same, inside


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer fixes and PostGIS queries (< 60 s)")
    ap.add_argument("--fences", type=int, default=10_000)
    ap.add_argument("--subjects", type=int, default=None)
    ap.add_argument("--fixes", type=int, default=None)
    ap.add_argument("--postgis-sample", type=int, default=None)
    ap.add_argument("--batch", type=int, default=50_000, help="fixes per engine call")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--instances", default=None, help="unused: the workload is generated")
    ap.add_argument("--cpu-s", type=float, default=None, help="unused")
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    fixes = args.fixes or (300_000 if args.quick else 2_000_000)
    subjects = args.subjects or (500 if args.quick else 2_000)
    sample = args.postgis_sample or (2_000 if args.quick else 10_000)
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    fences = make_fences(args.fences, rng)
    stream = make_stream(fences, subjects, fixes, rng)
    console.print(
        f"workload: {len(fences)} fences, {subjects} reps, {len(stream.t_ms)} fixes ({time.perf_counter() - t:.1f} s to generate)"
    )

    fixes_per_s, events, flagged = run_engine(fences, stream, subjects, args.batch)
    pg_per_s, pg_sets, picks = run_postgis(fences, stream, sample)
    same, differ, inside = agreement(fences, stream, picks, pg_sets)

    table = Table(title="geofence evaluation")
    table.add_column("path")
    table.add_column("fixes/s", justify="right")
    table.add_column("notes")
    table.add_row(
        "in-process engine", f"{fixes_per_s:,.0f}", f"{events:,} events, {flagged:,} flagged fixes"
    )
    table.add_row(
        "PostGIS, one indexed query per fix",
        f"{pg_per_s:,.0f}",
        f"{sample:,} fixes sampled, {inside:,} inside a fence",
    )
    console.print(table)
    console.print(f"containment agreement on the sample: {same}/{same + differ} fixes identical")
    print(
        json.dumps(
            {
                "fixes_per_s": round(fixes_per_s),
                "postgis_fixes_per_s": round(pg_per_s, 1),
                "speedup": round(fixes_per_s / pg_per_s, 1),
                "fences": len(fences),
                "fixes": len(stream.t_ms),
                "subjects": subjects,
                "events": events,
                "flagged": flagged,
                "agreement": round(same / max(1, same + differ), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
