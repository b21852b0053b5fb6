"""`fieldmesh ar`: write a territory's (or an asset's) GLB, USDZ, PNG and HTML page to a directory."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ar_viewer.errors import ArViewerError
from ar_viewer.model import AssetInput, HeightMetric, Scene, TerritoryInput
from ar_viewer.page import PageLinks, render_page
from kernel.settings import Settings


async def _read(settings: Settings, args: argparse.Namespace) -> TerritoryInput | AssetInput:
    import psycopg

    from ar_viewer import data

    try:
        async with await psycopg.AsyncConnection.connect(settings.dsn, connect_timeout=10) as conn:
            if args.asset:
                return await data.load_asset(conn, args.asset)
            metric: HeightMetric = "pipeline" if args.metric == "pipeline" else "revenue"
            return await data.load_territory(conn, args.territory, metric)
    except psycopg.OperationalError as exc:
        raise ArViewerError(
            f"cannot reach the database ({exc}); is `fieldmesh up` running?"
        ) from exc


def write_all(scene: Scene, out: Path, page_url: str) -> dict[str, Any]:
    """Write scene.glb, scene.usdz, scene.png and index.html to out; returns sizes and timings."""
    from ar_viewer.export import render_png, write_glb
    from ar_viewer.usdz import write_usdz

    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"title": scene.title, "triangles": scene.triangle_count}
    for name, fn in (("glb", write_glb), ("usdz", write_usdz)):
        t0 = time.perf_counter()
        report[f"{name}_bytes"] = fn(scene, out / f"scene.{name}")
        report[f"{name}_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    report["png_coverage"] = round(render_png(scene, out / "scene.png"), 3)
    report["png_s"] = round(time.perf_counter() - t0, 3)
    links = PageLinks("scene.glb", "scene.usdz", "scene.png", page_url, "#account-{id}")
    (out / "index.html").write_text(render_page(scene, links), encoding="utf-8")
    report["issues"] = len(scene.issues)
    return report


def cmd_ar(args: argparse.Namespace, settings: Settings) -> int:
    from ar_viewer.asset import build_asset_scene
    from ar_viewer.scene import build_territory_scene
    from ar_viewer.synthetic import synthetic_territory

    try:
        if args.synthetic is not None:
            inp: TerritoryInput | AssetInput = synthetic_territory(
                args.synthetic, name=args.territory or "Synthetic"
            )
        else:
            if not args.territory and not args.asset:
                print("fieldmesh ar: give --territory NAME, --asset DEVICE_ID or --synthetic N")
                return 2
            inp = asyncio.run(_read(settings, args))
        scene = (
            build_asset_scene(inp) if isinstance(inp, AssetInput) else build_territory_scene(inp)
        )
        page_url = args.page_url or f"http://{settings.http_host}:{settings.http_port}/ar/" + (
            f"assets/{args.asset}" if args.asset else f"territories/{args.territory}"
        )
        report = write_all(scene, Path(args.out), page_url)
    except ArViewerError as exc:
        print(f"fieldmesh ar: {exc}")
        return 1
    for issue in scene.issues[:20]:
        print(f"  {issue.kind}: {issue.subject} ({issue.field}): {issue.message}")
    if len(scene.issues) > 20:
        print(f"  ... and {len(scene.issues) - 20} more data problems")
    print(json.dumps(report))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ar", help="write a territory's 3D scene (GLB, USDZ, PNG, HTML page) to a directory"
    )
    p.add_argument("--territory", help="territory name (CRM territories.name)")
    p.add_argument("--asset", help="an equipment device id instead of a territory")
    p.add_argument(
        "--metric", choices=("revenue", "pipeline"), default="revenue", help="column height"
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="a synthetic territory of N accounts (no database)",
    )
    p.add_argument("--page-url", help="URL the page's QR code opens (default: the app's AR page)")
    p.set_defaults(func=cmd_ar)
