"""The territory scene: ground plane, account columns, device markers, the day's route.

Pure: TerritoryInput in, Scene out. Positions are projected to a local tangent plane
around the territory's centre (metres), then scaled so the territory's longest side is
`table_size_m` long (a table-top model, the scale is stated). Beyond `max_columns`
accounts, accounts are aggregated into a square grid of columns so the triangle count
stays within TRIANGLE_BUDGET whatever the number of accounts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from ar_viewer import mesh
from ar_viewer.errors import SceneInputError
from ar_viewer.model import (
    ALERT_STATES,
    AccountInput,
    Issue,
    Label,
    LegendEntry,
    LonLat,
    Part,
    Scene,
    TerritoryInput,
)
from ar_viewer.palette import (
    ALERT_MEANING,
    ALERT_SEVERITY,
    HEALTH_CLASSES,
    HEALTH_UNKNOWN,
    MATERIAL_BY_NAME,
    MATERIALS,
    alert_material,
    health_material,
)
from ar_viewer.projection import east_north_to_scene_xz, lonlat_to_east_north_m

TRIANGLE_BUDGET = 6000


@dataclass(frozen=True, slots=True)
class TerritoryLayout:
    """Sizes on the table and the polygon budget of a territory scene."""

    table_size_m: float = 1.0  # the territory's longest side on the table
    max_height_m: float = 0.25  # the tallest column
    min_height_m: float = 0.006  # a column of zero value still shows
    column_size_m: float = 0.012  # footprint side of a single-account column
    max_columns: int = 300  # beyond this, accounts are aggregated into grid bins
    max_markers: int = 100  # beyond this, devices are aggregated (worst state wins)
    max_route_points: int = 150
    max_outline_points: int = 200
    max_labels: int = 25
    default_extent_m: float = 1000.0  # ground size when there is nothing to measure


def format_amount(value: float) -> str:
    for limit, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g} {suffix}"
    return f"{value:.0f}"


def _valid_lonlat(lon: float | None, lat: float | None) -> bool:
    return (
        lon is not None
        and lat is not None
        and math.isfinite(lon)
        and math.isfinite(lat)
        and -180.0 <= lon <= 180.0
        and -90.0 <= lat <= 90.0
    )


@dataclass(frozen=True, slots=True)
class _Clean:
    accounts: list[AccountInput]
    values: npt.NDArray[np.float64]
    health: npt.NDArray[np.float64]  # NaN = unknown


def _clean_accounts(t: TerritoryInput, issues: list[Issue]) -> _Clean:
    kept: list[AccountInput] = []
    values: list[float] = []
    health: list[float] = []
    metric = "revenue" if t.height_metric == "revenue" else "open_pipeline"
    for a in t.accounts:
        subject = f"account {a.id}"
        if not _valid_lonlat(a.lon, a.lat):
            issues.append(
                Issue(
                    "left_out",
                    subject,
                    "location",
                    f"{a.name!r} has no valid location ({a.lon}, {a.lat})",
                )
            )
            continue
        raw = a.revenue if metric == "revenue" else a.open_pipeline
        value = 0.0 if raw is None else float(raw)
        if not math.isfinite(value):
            issues.append(
                Issue("clamped", subject, metric, f"{metric} {raw} is not a number; 0 used")
            )
            value = 0.0
        elif value < 0:
            issues.append(Issue("clamped", subject, metric, f"negative {metric} {raw}; 0 used"))
            value = 0.0
        h = math.nan if a.health is None else float(a.health)
        if a.health is not None and not math.isfinite(h):
            issues.append(
                Issue(
                    "clamped", subject, "health", f"health {a.health} is not a number; unknown used"
                )
            )
            h = math.nan
        elif math.isfinite(h) and not 0.0 <= h <= 100.0:
            clamped = min(max(h, 0.0), 100.0)
            issues.append(
                Issue(
                    "clamped",
                    subject,
                    "health",
                    f"health {a.health} outside 0..100; {clamped:g} used",
                )
            )
            h = clamped
        kept.append(a)
        values.append(value)
        health.append(h)
    return _Clean(kept, np.asarray(values, np.float64), np.asarray(health, np.float64))


def _outline_polygons(
    t: TerritoryInput, origin: tuple[float, float], layout: TerritoryLayout
) -> list[shapely.Polygon]:
    """The outline in east/north metres, valid and simplified to the point budget."""
    polys: list[shapely.Polygon] = []
    for i, poly in enumerate(t.outline):
        if not poly or len(poly[0]) < 3:
            raise SceneInputError(
                f"territory {t.name!r}: polygon {i} has fewer than 3 points", field="outline"
            )
        rings = []
        for ring in poly:
            if not all(_valid_lonlat(lon, lat) for lon, lat in ring):
                raise SceneInputError(
                    f"territory {t.name!r}: polygon {i} has a coordinate out of range",
                    field="outline",
                )
            rings.append(lonlat_to_east_north_m(ring, origin))
        p = shapely.make_valid(shapely.Polygon(rings[0], rings[1:]))
        polys.extend(
            g for g in shapely.get_parts(p) if isinstance(g, shapely.Polygon) and not g.is_empty
        )
    geom = shapely.union_all(polys) if polys else shapely.Polygon()
    tolerance = 0.0
    npts = shapely.get_num_coordinates(geom)
    while npts > layout.max_outline_points:
        minx, miny, maxx, maxy = geom.bounds
        tolerance = tolerance * 2 if tolerance else max(maxx - minx, maxy - miny) / 2000
        geom = shapely.simplify(geom, tolerance, preserve_topology=True)
        npts = shapely.get_num_coordinates(geom)
    return [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon) and not g.is_empty]


def _origin(t: TerritoryInput, account_lonlat: npt.NDArray[np.float64]) -> tuple[float, float]:
    pts = [p for poly in t.outline for p in poly[0] if _valid_lonlat(*p)] if t.outline else []
    arr = np.asarray(pts, np.float64) if pts else account_lonlat
    if arr.shape[0] == 0:
        return 0.0, 0.0
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    return float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)


def _grid_bins(
    xy: npt.NDArray[np.float64], max_bins: int, extent: float
) -> tuple[npt.NDArray[np.int64], float]:
    """Bin ids of points on the finest square grid with at most max_bins occupied cells
    (clustered accounts occupy few cells, so the grid is refined while the budget allows)."""

    def occupied(cell: float) -> tuple[int, npt.NDArray[np.int64]]:
        _, inverse = np.unique(np.floor(xy / cell).astype(np.int64), axis=0, return_inverse=True)
        inv = inverse.reshape(-1).astype(np.int64)
        return int(inv.max(initial=-1)) + 1, inv

    cell = extent / max(1.0, math.floor(math.sqrt(max_bins)))
    count, inv = occupied(cell)
    while count > max_bins:
        cell *= 1.2
        count, inv = occupied(cell)
    for _ in range(30):
        finer = cell / 1.1
        n_finer, inv_finer = occupied(finer)
        if n_finer > max_bins:
            break
        cell, inv = finer, inv_finer
    return inv, cell


def build_territory_scene(t: TerritoryInput, layout: TerritoryLayout | None = None) -> Scene:
    """Build the table-top scene of a territory (see the module docstring)."""
    layout = layout or TerritoryLayout()
    if not t.name.strip():
        raise SceneInputError("territory name is empty", field="name")
    if t.height_metric not in ("revenue", "pipeline"):
        raise SceneInputError(
            f"height_metric must be revenue or pipeline, not {t.height_metric!r}",
            field="height_metric",
        )
    issues: list[Issue] = []
    clean = _clean_accounts(t, issues)
    acc_ll = np.array([[a.lon, a.lat] for a in clean.accounts], np.float64).reshape(-1, 2)
    origin = _origin(t, acc_ll)
    outline = _outline_polygons(t, origin, layout)
    acc_en = lonlat_to_east_north_m(acc_ll, origin) if acc_ll.shape[0] else np.zeros((0, 2))

    # extent: outline and accounts together; no outline -> the accounts' hull with a margin
    if not outline:
        if acc_en.shape[0] >= 3 and shapely.MultiPoint(acc_en).convex_hull.area > 0:
            hull = shapely.MultiPoint(acc_en).convex_hull
            minx, miny, maxx, maxy = hull.bounds
            outline = [hull.buffer(0.08 * max(maxx - minx, maxy - miny), quad_segs=4)]
        else:
            half_extent = layout.default_extent_m / 2
            cx, cy = acc_en.mean(axis=0) if acc_en.shape[0] else (0.0, 0.0)
            outline = [
                shapely.box(cx - half_extent, cy - half_extent, cx + half_extent, cy + half_extent)
            ]
    bounds = np.array([p.bounds for p in outline])
    lo = np.minimum(bounds[:, :2].min(axis=0), acc_en.min(axis=0) if acc_en.shape[0] else np.inf)
    hi = np.maximum(bounds[:, 2:].max(axis=0), acc_en.max(axis=0) if acc_en.shape[0] else -np.inf)
    extent_m = float(max(hi[0] - lo[0], hi[1] - lo[1], 1.0))
    centre = (lo + hi) / 2
    scale = layout.table_size_m / extent_m

    def to_xz(en: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        return east_north_to_scene_xz(en - centre, scale)

    parts: list[Part] = []
    ground_polys = [shapely.transform(p, lambda c: to_xz(c).astype(np.float64)) for p in outline]
    parts.append(mesh.to_part("ground", "ground", mesh.flat_polygons(ground_polys, 0.0)))

    # ---- columns
    n = len(clean.accounts)
    aggregated = n > layout.max_columns
    col_xz: npt.NDArray[np.float32]
    half: npt.NDArray[np.float32]
    top_of_bin: npt.NDArray[np.int64]
    col_value: npt.NDArray[np.float64]
    col_health: npt.NDArray[np.float64]
    if aggregated:
        bin_of, cell_m = _grid_bins(acc_en - lo, layout.max_columns, extent_m)
        nb = int(bin_of.max()) + 1
        counts = np.bincount(bin_of, minlength=nb)
        col_value = np.bincount(bin_of, weights=clean.values, minlength=nb).astype(np.float64)
        known = np.isfinite(clean.health)
        w = clean.values + 1.0
        hw = np.bincount(bin_of[known], weights=(clean.health * w)[known], minlength=nb)
        ww = np.bincount(bin_of[known], weights=w[known], minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            col_health = np.where(ww > 0, hw / np.where(ww > 0, ww, 1), np.nan)
        cell_ij = np.floor((acc_en - lo) / cell_m)
        first = np.full(nb, -1, np.int64)
        first[bin_of[::-1]] = np.arange(n)[::-1]
        col_en = (cell_ij[first] + 0.5) * cell_m + lo
        col_xz = to_xz(col_en)
        half = np.full(nb, 0.4 * cell_m * scale, np.float32)
        # the biggest account of each bin, for the label's link
        order = np.lexsort((clean.values, bin_of))
        top_of_bin = np.full(nb, -1, np.int64)
        top_of_bin[bin_of[order]] = order
    else:
        nb = n
        cell_m = 0.0
        counts = np.ones(n, np.int64)
        col_value = clean.values
        col_health = clean.health
        col_xz = to_xz(acc_en) if n else np.zeros((0, 2), np.float32)
        half = np.full(n, layout.column_size_m / 2 * layout.table_size_m, np.float32)
        top_of_bin = np.arange(n, dtype=np.int64)
    max_value = float(col_value.max()) if nb else 0.0
    rel = col_value / max_value if max_value > 0 else np.zeros(nb)
    heights = (layout.min_height_m + rel * (layout.max_height_m - layout.min_height_m)).astype(
        np.float32
    )
    col_material = [health_material(float(h)) for h in col_health]
    by_material: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(col_material):
        by_material[m].append(i)
    for m_name in [name for _, name, _ in HEALTH_CLASSES] + [HEALTH_UNKNOWN]:
        idx = np.asarray(by_material.get(m_name, []), np.int64)
        if idx.size:
            parts.append(
                mesh.to_part(
                    f"accounts_{m_name}", m_name, mesh.columns(col_xz[idx], half[idx], heights[idx])
                )
            )

    # ---- labels (the biggest columns)
    metric_name = "revenue" if t.height_metric == "revenue" else "open pipeline"
    labels: list[Label] = []
    for i in np.argsort(-col_value, kind="stable")[: layout.max_labels]:
        top = clean.accounts[int(top_of_bin[i])]
        h_txt = "unknown" if math.isnan(col_health[i]) else f"{col_health[i]:.0f}"
        detail = f"{metric_name} {format_amount(float(col_value[i]))} {t.currency}, health {h_txt}"
        text = f"{counts[i]} accounts (largest: {top.name})" if aggregated else top.name
        labels.append(
            Label(
                text, (float(col_xz[i, 0]), float(heights[i]), float(col_xz[i, 1])), detail, top.id
            )
        )

    # ---- devices
    acc_index = {a.id: i for i, a in enumerate(clean.accounts)}
    col_of_account = bin_of if aggregated else np.arange(n)
    marker_r = 0.008 * layout.table_size_m
    dev_xz: list[npt.NDArray[np.float32]] = []
    dev_y: list[float] = []
    dev_state: list[str] = []
    for d in t.devices:
        state = d.alert_state.strip().lower()
        if state not in ALERT_STATES:
            issues.append(
                Issue(
                    "clamped",
                    f"device {d.id}",
                    "alert_state",
                    f"unknown alert state {d.alert_state!r}; unknown used",
                )
            )
            state = "unknown"
        ai = acc_index.get(d.account_id) if d.account_id is not None else None
        if _valid_lonlat(d.lon, d.lat):
            xz = to_xz(lonlat_to_east_north_m(np.array([[d.lon, d.lat]], np.float64), origin))[0]
        elif ai is not None:
            xz = to_xz(acc_en[ai : ai + 1])[0]
        else:
            issues.append(
                Issue(
                    "left_out",
                    f"device {d.id}",
                    "location",
                    "no valid location and no located account",
                )
            )
            continue
        base = float(heights[col_of_account[ai]]) if ai is not None else 0.0
        dev_xz.append(xz)
        dev_y.append(base + 1.8 * marker_r)
        dev_state.append(state)
    if dev_xz:
        dxz = np.asarray(dev_xz, np.float64)
        dy = np.asarray(dev_y)
        states = np.asarray(dev_state)
        if len(dev_xz) > layout.max_markers:
            dbin, _ = _grid_bins(
                dxz - dxz.min(axis=0), layout.max_markers, float(np.ptp(dxz, axis=0).max()) or 1.0
            )
            nbins = int(dbin.max()) + 1
            sev = np.array([ALERT_SEVERITY[s] for s in states])
            worst = np.full(nbins, -1)
            np.maximum.at(worst, dbin, sev)
            inv = {v: k for k, v in ALERT_SEVERITY.items()}
            cnt = np.bincount(dbin, minlength=nbins)
            mx = np.bincount(dbin, weights=dxz[:, 0], minlength=nbins) / cnt
            mz = np.bincount(dbin, weights=dxz[:, 1], minlength=nbins) / cnt
            ymax = np.full(nbins, 0.0)
            np.maximum.at(ymax, dbin, dy)
            dxz, dy = np.stack([mx, mz], axis=1), ymax
            states = np.array([inv[int(w)] for w in worst])
        for state in ALERT_STATES:
            sel = states == state
            if sel.any():
                centres = np.stack([dxz[sel, 0], dy[sel], dxz[sel, 1]], axis=1).astype(np.float32)
                parts.append(
                    mesh.to_part(
                        f"devices_{state}", alert_material(state), mesh.markers(centres, marker_r)
                    )
                )

    # ---- route
    route_ll = [p for p in t.route if _valid_lonlat(*p)]
    if len(route_ll) != len(t.route):
        issues.append(
            Issue(
                "left_out",
                "route",
                "route",
                f"{len(t.route) - len(route_ll)} route point(s) with invalid coordinates",
            )
        )
    route_points = _decimate(route_ll, layout.max_route_points)
    if len(route_points) >= 2:
        rxz = to_xz(lonlat_to_east_north_m(route_points, origin))
        parts.append(
            mesh.to_part(
                "route",
                "route",
                mesh.ribbon(rxz, 0.005 * layout.table_size_m, 0.0015 * layout.table_size_m),
            )
        )

    used = {p.material for p in parts}
    legend = _legend(used, aggregated)
    ratio = 1 / scale
    scale_note = (
        f"scale 1:{ratio:,.0f} (1 m on the table = {extent_m / layout.table_size_m / 1000:.3g} km); "
        f"tallest column {layout.max_height_m:.2f} m = {metric_name} {format_amount(max_value)} {t.currency}"
    )
    if aggregated:
        scale_note += f"; accounts aggregated into {cell_m / 1000:.3g} km grid cells"
    stats: dict[str, int | float | bool | str] = {
        "accounts_in": len(t.accounts),
        "accounts_shown": n,
        "accounts_left_out": len(t.accounts) - n,
        "columns": nb,
        "aggregated": aggregated,
        "cell_m": round(cell_m, 1),
        "extent_m": round(extent_m, 1),
        "devices_in": len(t.devices),
        "route_points": len(route_points),
    }
    materials = tuple(MATERIAL_BY_NAME[m.name] for m in MATERIALS if m.name in used)
    scene = Scene(
        "territory", f"Territory {t.name}", tuple(p for p in parts if p.triangle_count), materials, tuple(labels),
        legend, scale_note, scale, tuple(issues), stats,
    )  # fmt: skip
    scene.stats["triangles"] = scene.triangle_count
    return scene


def _decimate(points: list[LonLat], max_points: int) -> list[LonLat]:
    if len(points) <= max_points:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
    return [points[int(i)] for i in idx]


def _legend(used: set[str], aggregated: bool) -> tuple[LegendEntry, ...]:
    entries: list[LegendEntry] = []
    what = "grid cell (value-weighted health)" if aggregated else "account"
    for _, name, meaning in HEALTH_CLASSES:
        entries.append(
            LegendEntry(name, MATERIAL_BY_NAME[name].hex, f"{what}: {meaning}", "accounts")
        )
    if HEALTH_UNKNOWN in used:
        entries.append(
            LegendEntry(
                HEALTH_UNKNOWN,
                MATERIAL_BY_NAME[HEALTH_UNKNOWN].hex,
                f"{what}: health unknown",
                "accounts",
            )
        )
    for state, meaning in ALERT_MEANING.items():
        name = alert_material(state)
        if name in used:
            entries.append(
                LegendEntry(name, MATERIAL_BY_NAME[name].hex, f"device: {meaning}", "devices")
            )
    if "route" in used:
        entries.append(
            LegendEntry("route", MATERIAL_BY_NAME["route"].hex, "today's route", "route")
        )
    entries.append(LegendEntry("ground", MATERIAL_BY_NAME["ground"].hex, "territory", "ground"))
    return tuple(entries)
