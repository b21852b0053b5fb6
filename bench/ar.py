"""AR territory scenes: build + GLB export time, file sizes and triangle counts for 100,
1,000 and 10,000 accounts, and the headless PNG render time at 1280x720.

The baseline, measured in the same run, is the naive scene: one column per account, no
aggregation (`TerritoryLayout(max_columns=unbounded)`). Accounts are synthetic (seeded
clusters of towns inside a star-shaped territory, ar_viewer/synthetic.py); with
`--instances DIR`, every `*.csv` there with columns lon,lat[,revenue][,health] is run too.

    python -m bench.ar [--quick] [--instances DIR] [--cpu-s N]

Last line: one JSON object with build_s_10000, glb_bytes_10000, triangles_10000, render_s.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ar_viewer.export import render_png, write_glb
from ar_viewer.model import AccountInput, TerritoryInput
from ar_viewer.scene import TerritoryLayout, build_territory_scene
from ar_viewer.synthetic import synthetic_territory
from ar_viewer.usdz import write_usdz

NAIVE = TerritoryLayout(max_columns=10**9, max_markers=10**9, max_labels=10**9)


def _measure(
    t: TerritoryInput, layout: TerritoryLayout, out: Path, repeats: int, usdz: bool
) -> dict[str, Any]:
    """Median build and build+GLB-export times over repeats; sizes of the last run."""
    build_s, total_s = [], []
    glb = 0
    triangles = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        scene = build_territory_scene(t, layout)
        t1 = time.perf_counter()
        glb = write_glb(scene, out / "scene.glb")
        t2 = time.perf_counter()
        build_s.append(t1 - t0)
        total_s.append(t2 - t0)
        triangles = scene.triangle_count
    row: dict[str, Any] = {
        "scene_s": statistics.median(build_s),
        "build_export_s": statistics.median(total_s),
        "glb_bytes": glb,
        "triangles": triangles,
        "columns": scene.stats["columns"],
    }
    if usdz:
        t0 = time.perf_counter()
        row["usdz_bytes"] = write_usdz(scene, out / "scene.usdz")
        row["usdz_s"] = time.perf_counter() - t0
    return row


def _csv_territory(path: Path) -> TerritoryInput:
    accounts = []
    with path.open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f)):

            def num(key: str, row: dict[str, str] = r) -> float | None:
                v = row.get(key)
                return float(v) if v not in (None, "") else None

            accounts.append(
                AccountInput(
                    str(i),
                    r.get("name") or f"{path.stem} {i}",
                    num("lon"),
                    num("lat"),
                    num("revenue"),
                    None,
                    num("health"),
                )
            )
    return TerritoryInput(path.stem, accounts=tuple(accounts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.ar", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="one repetition, baseline up to 10,000 (within 60 s)"
    )
    ap.add_argument(
        "--instances", type=Path, help="directory of extra account CSVs (lon,lat,revenue,health)"
    )
    ap.add_argument(
        "--cpu-s", type=float, help="accepted for the Makefile; the scenes have no solver budget"
    )
    args = ap.parse_args(argv)
    console = Console(width=150)
    repeats = 1 if args.quick else 3
    cases: list[tuple[str, TerritoryInput]] = [
        (f"{n:,}", synthetic_territory(n, seed=11)) for n in (100, 1_000, 10_000)
    ]
    if args.instances and args.instances.is_dir():
        cases += [(p.name, _csv_territory(p)) for p in sorted(args.instances.glob("*.csv"))]
    rows: dict[str, dict[str, Any]] = {}
    # load open3d and usd-core once, outside the timings
    warm = build_territory_scene(synthetic_territory(10, seed=1))
    with tempfile.TemporaryDirectory(prefix="bench_ar_") as tmp:
        out = Path(tmp)
        write_glb(warm, out / "warm.glb")
        write_usdz(warm, out / "warm.usdz")
        table = Table(title=f"AR territory scene: build + GLB export (median of {repeats})")
        for col in (
            "accounts",
            "variant",
            "columns",
            "triangles",
            "build+GLB s",
            "GLB KB",
            "USDZ KB",
            "vs naive",
        ):
            table.add_column(col, justify="right")
        for label, t in cases:
            agg = _measure(t, TerritoryLayout(), out, repeats, usdz=True)
            naive = _measure(t, NAIVE, out, repeats, usdz=False)
            rows[label] = {"aggregated": agg, "naive": naive}
            for variant, r in (("aggregated", agg), ("naive", naive)):
                ratio = ""
                if variant == "aggregated":
                    ratio = (
                        f"{naive['triangles'] / max(1, r['triangles']):.1f}x tris, "
                        f"{naive['glb_bytes'] / r['glb_bytes']:.1f}x bytes"
                    )
                table.add_row(
                    label, variant, str(r["columns"]), f"{r['triangles']:,}", f"{r['build_export_s']:.3f}",
                    f"{r['glb_bytes'] / 1024:,.0f}", f"{r['usdz_bytes'] / 1024:,.0f}" if "usdz_bytes" in r else "-", ratio,
                )  # fmt: skip
        console.print(table)
        big = synthetic_territory(10_000, seed=11)
        scene = build_territory_scene(big)
        render_png(
            scene, out / "warm.png", 320, 180
        )  # the first context creation is not the render
        renders = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            coverage = render_png(scene, out / "scene.png", 1280, 720)
            renders.append(time.perf_counter() - t0)
        render_s = statistics.median(renders)
        naive_scene = build_territory_scene(big, NAIVE)
        t0 = time.perf_counter()
        render_png(naive_scene, out / "naive.png", 1280, 720)
        naive_render_s = time.perf_counter() - t0
    console.print(
        f"PNG 1280x720 (Mesa, no GPU), 10,000 accounts: {render_s:.3f} s aggregated "
        f"({coverage:.0%} of pixels drawn), {naive_render_s:.3f} s naive"
    )
    agg10 = rows["10,000"]["aggregated"]
    naive10 = rows["10,000"]["naive"]
    ok = agg10["build_export_s"] < 2.0 and agg10["glb_bytes"] < 2 * 1024 * 1024
    console.print(f"target (10,000 accounts < 2 s and < 2 MB GLB): {'met' if ok else 'MISSED'}")
    result = {
        "build_s_10000": round(agg10["build_export_s"], 4),
        "glb_bytes_10000": agg10["glb_bytes"],
        "triangles_10000": agg10["triangles"],
        "render_s": round(render_s, 4),
        "usdz_bytes_10000": agg10["usdz_bytes"],
        "build_s_1000": round(rows["1,000"]["aggregated"]["build_export_s"], 4),
        "build_s_100": round(rows["100"]["aggregated"]["build_export_s"], 4),
        "baseline_build_s_10000": round(naive10["build_export_s"], 4),
        "baseline_glb_bytes_10000": naive10["glb_bytes"],
        "baseline_triangles_10000": naive10["triangles"],
        "baseline_render_s": round(naive_render_s, 4),
        "target_met": ok,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
