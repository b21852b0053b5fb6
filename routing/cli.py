"""`fieldmesh plan --territory ... --date ...`: plan a territory's day from the CRM and store it."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kernel.settings import Settings
from routing.crm_source import PlanRequest
from routing.geojson import plan_to_geojson
from routing.ical import rep_calendar
from routing.model import Plan, Problem, RoutingError
from routing.planner import plan as plan_problem
from routing.roadgraph import RoadGraphMatrix, load_osm_xml
from routing.solver import Progress, SolverOptions


async def _territory_id(conn: Any, value: str) -> int:
    if value.isdigit():
        return int(value)
    async with conn.cursor() as cur:
        await cur.execute("SELECT id FROM territories WHERE lower(name) = lower(%s)", (value,))
        row = await cur.fetchone()
    if row is None:
        raise RoutingError(f"no territory named {value!r}")
    return int(row[0])


async def _run(
    args: argparse.Namespace, settings: Settings, console: Console
) -> tuple[int, Problem, Plan]:
    import psycopg

    from routing import store

    async with await psycopg.AsyncConnection.connect(settings.dsn, autocommit=True) as conn:
        territories = [await _territory_id(conn, t) for t in args.territory]
        req = PlanRequest(
            territory_ids=tuple(territories),
            plan_date=args.date,
            cpu_s=args.cpu_s,
            minimise_reps=args.minimise_reps,
        )
        locked = await store.locked_stops(conn, territories, req.plan_date)
        problem = await store.load_problem(conn, req, locked)
        console.print(
            f"territory {', '.join(args.territory)} on {req.plan_date}: "
            f"{len(problem.reps)} reps, {len(problem.visits)} visits"
        )
        plan_id = await store.create_plan(conn, req, None)
        with console.status("solving...") as status:

            def progress(p: Progress) -> None:
                status.update(
                    f"solving: {p.phase}, {p.reps} reps, {p.dropped} dropped, {p.cpu_s:.1f} CPU-s"
                )

            # The CLI owns its process: solving here blocks nothing but this command.
            provider = RoadGraphMatrix(load_osm_xml(Path(args.osm))) if args.osm else None
            result = plan_problem(
                problem,
                provider,
                SolverOptions(cpu_s=req.cpu_s, progress=progress, seed=getattr(args, "seed", None)),
            )
        await store.save_result(conn, plan_id, problem, result)
        return plan_id, problem, result


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    try:
        plan_id, problem, result = asyncio.run(_run(args, settings, console))
    except RoutingError as exc:
        console.print(f"[red]cannot plan:[/] {exc}")
        return 2
    table = Table(title=f"plan {plan_id}")
    for col in ("rep", "stops", "start", "end", "km", "travel min"):
        table.add_column(col)
    for r in result.routes:
        table.add_row(
            r.rep_id, str(len(r.stops)), f"{problem.at(r.start_s):%H:%M}", f"{problem.at(r.end_s):%H:%M}",
            f"{r.distance_m / 1000:.1f}", f"{r.travel_s / 60:.0f}",
        )  # fmt: skip
    console.print(table)
    for d in result.dropped:
        console.print(f"[yellow]dropped[/] {d.visit_id}: {d.message}")
    for i in result.issues:
        if i.visit_id is None:
            console.print(f"[yellow]issue[/] {i.message}")
    if args.geojson:
        Path(args.geojson).write_text(
            json.dumps(plan_to_geojson(problem, result)), encoding="utf-8"
        )
    if args.ics_dir:
        out = Path(args.ics_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in result.routes:
            (out / f"plan{plan_id}-rep{r.rep_id}.ics").write_text(
                rep_calendar(problem, result, r.rep_id, f"plan{plan_id}"),
                encoding="utf-8",
                newline="",
            )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan", help="plan a territory's visits for a day (OR-Tools) and store the plan"
    )
    p.add_argument(
        "--territory",
        action="append",
        required=True,
        help="territory name or id (repeat to plan across territories)",
    )
    p.add_argument("--date", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    p.add_argument("--cpu-s", type=float, default=10.0, help="CPU-seconds for the search")
    p.add_argument("--minimise-reps", action="store_true", help="use as few reps as possible first")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="reproducible plan: the same seed and --cpu-s give the same plan",
    )
    p.add_argument(
        "--osm", help="travel times on the roads of this OSM XML extract (default: great-circle)"
    )
    p.add_argument("--geojson", help="also write the plan as GeoJSON to this file")
    p.add_argument("--ics-dir", help="also write one .ics per rep into this directory")
    p.set_defaults(func=cmd_plan)
