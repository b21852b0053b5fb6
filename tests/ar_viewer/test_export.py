"""Exports: every GLB passes the structural glTF checks with the right colours; the USDZ
opens with usd-core; the PNG rendered headless (Mesa) is not blank."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pxr import Usd, UsdGeom, UsdShade

from ar_viewer.asset import build_asset_scene
from ar_viewer.export import render_png, write_glb
from ar_viewer.model import Scene, TerritoryInput
from ar_viewer.scene import build_territory_scene
from ar_viewer.synthetic import synthetic_pump, synthetic_territory
from ar_viewer.usdz import write_usdz
from tests.ar_viewer.gltf_check import check_glb, read_png

SCENES = {
    "territory_100": lambda: build_territory_scene(synthetic_territory(100)),
    "territory_10000": lambda: build_territory_scene(synthetic_territory(10_000)),
    "territory_empty": lambda: build_territory_scene(TerritoryInput("Empty")),
    "pump": lambda: build_asset_scene(synthetic_pump()),
}


@pytest.fixture(params=sorted(SCENES))
def scene(request: pytest.FixtureRequest) -> Scene:
    return SCENES[request.param]()


def test_glb_is_valid_y_up_and_coloured_by_materials(scene: Scene, tmp_path: Path) -> None:
    path = tmp_path / "s.glb"
    size = write_glb(scene, path)
    assert size == path.stat().st_size
    prims = check_glb(path.read_bytes())
    assert sum(p.indices.shape[0] for p in prims) == scene.triangle_count
    pos = np.concatenate([p.positions for p in prims])
    lo, hi = scene.bounds_m()
    assert np.allclose(pos.min(axis=0), lo, atol=1e-5) and np.allclose(
        pos.max(axis=0), hi, atol=1e-5
    )
    assert pos[:, 1].min() >= -1e-6, "Y up: nothing below the ground"
    # every part's colour survives: each triangle samples its material's colour at all
    # three corners (open3d merges identical vertices, so compare triangles, not vertices)
    found: Counter[tuple[int, int, int]] = Counter()
    for p in prims:
        rgb = p.vertex_rgb().round().astype(int)[p.indices]  # (m, 3 corners, 3)
        assert (rgb == rgb[:, :1, :]).all(), "a triangle with mixed colours"
        found.update((int(t[0, 0]), int(t[0, 1]), int(t[0, 2])) for t in rgb)
    expected: Counter[tuple[int, int, int]] = Counter()
    for part in scene.parts:
        expected[scene.material(part.material).rgb] += part.triangle_count
    assert found == expected


def test_glb_loads_in_trimesh(tmp_path: Path) -> None:
    import trimesh

    s = build_territory_scene(synthetic_territory(500))
    write_glb(s, tmp_path / "s.glb")
    loaded = trimesh.load_scene(tmp_path / "s.glb")
    assert sum(len(g.faces) for g in loaded.geometry.values()) == s.triangle_count
    assert loaded.bounds[0][1] >= -1e-6  # Y up: the ground is the lowest point


def test_usdz_opens_with_usd_core_with_a_material_per_part(scene: Scene, tmp_path: Path) -> None:
    path = tmp_path / "s.usdz"
    write_usdz(scene, path)
    stage = Usd.Stage.Open(str(path))
    assert stage is not None
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert len(meshes) == len(scene.parts)
    tris = 0
    for m in meshes:
        counts = list(m.GetFaceVertexCountsAttr().Get())
        assert set(counts) == {3}
        tris += len(counts)
        indices = np.asarray(m.GetFaceVertexIndicesAttr().Get())
        assert indices.max() < len(m.GetPointsAttr().Get())
        mat, _ = UsdShade.MaterialBindingAPI(m.GetPrim()).ComputeBoundMaterial()
        assert mat, f"{m.GetPath()} has no material"
        shader = UsdShade.Shader(stage.GetPrimAtPath(mat.GetPath().AppendChild("Surface")))
        assert shader.GetIdAttr().Get() == "UsdPreviewSurface"
        assert shader.GetInput("diffuseColor").Get() is not None
    assert tris == scene.triangle_count


def test_png_snapshot_is_not_blank_and_shows_the_scene_colours(tmp_path: Path) -> None:
    s = build_territory_scene(synthetic_territory(300))
    path = tmp_path / "s.png"
    coverage = render_png(s, path, 1280, 720)
    assert coverage > 0.05
    img = read_png(str(path)).astype(int)
    assert img.shape == (720, 1280, 3)
    # the ground (beige) and health-coloured columns are on screen: lit colours keep their hue
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    greenish = (g > r + 20) & (g > b + 20)
    warm = (r > b + 40) & (r > 120)
    assert greenish.sum() > 500 and warm.sum() > 500


def test_png_of_the_pump(tmp_path: Path) -> None:
    coverage = render_png(build_asset_scene(synthetic_pump()), tmp_path / "p.png", 640, 360)
    assert 0.02 < coverage < 0.95
    assert not math.isnan(coverage)
