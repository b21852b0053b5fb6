"""The open3d adapter: a Scene to a GLB (tensor API) and to a PNG (headless Visualizer).

GLB: open3d's legacy writer produces an invalid file with no material, so the scene is
written with `open3d.t.io.write_triangle_mesh` as one tensor mesh with one PBR material
whose base colour is a small palette texture: each scene material is a square cell of the
palette, and every vertex's UV points at the centre of its material's cell. The colours
thus live in a material (iOS Quick Look and some viewers ignore vertex colours), and the
file is a single valid glTF 2.0 binary.

PNG: the legacy Visualizer with an invisible window renders through Mesa (EGL) without a
GPU in well under a second; OffscreenRenderer falls back to software Vulkan and is far
slower. Rendering is serialised (one OpenGL context at a time).
"""

from __future__ import annotations

import importlib
import math
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ar_viewer.errors import ExportError
from ar_viewer.model import Scene

PALETTE_COLUMNS = 8
PALETTE_CELL_PX = 8
_RENDER_LOCK = threading.Lock()


def _open3d() -> Any:
    # Typed as Any: open3d's bundled stubs reject valid calls (Tensor(ndarray) without dtype
    # and device, str paths), so its API is used untyped, in this module only.
    return importlib.import_module("open3d")


def palette_image(scene: Scene) -> npt.NDArray[np.uint8]:
    """The palette texture (H, W, 3) sRGB: material i fills cell i (row-major)."""
    rows = max(1, math.ceil(len(scene.materials) / PALETTE_COLUMNS))
    rows = 1 << (rows - 1).bit_length()  # a power of two, for mipmaps
    img = np.full((rows * PALETTE_CELL_PX, PALETTE_COLUMNS * PALETTE_CELL_PX, 3), 255, np.uint8)
    for i, m in enumerate(scene.materials):
        r, c = divmod(i, PALETTE_COLUMNS)
        img[
            r * PALETTE_CELL_PX : (r + 1) * PALETTE_CELL_PX,
            c * PALETTE_CELL_PX : (c + 1) * PALETTE_CELL_PX,
        ] = m.rgb
    return img


def palette_uv(scene: Scene, material: str) -> tuple[float, float]:
    """UV (glTF convention: origin at the top left) of the centre of a material's cell."""
    i = [m.name for m in scene.materials].index(material)
    rows = palette_image(scene).shape[0] // PALETTE_CELL_PX
    r, c = divmod(i, PALETTE_COLUMNS)
    return (c + 0.5) / PALETTE_COLUMNS, (r + 0.5) / rows


def _arrays(
    scene: Scene,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
]:
    """Merged positions, normals, triangles, UVs and sRGB colours (0..1) of all parts."""
    pos, nrm, tri, uv, col = [], [], [], [], []
    offset = 0
    for p in scene.parts:
        k = p.positions_m.shape[0]
        pos.append(p.positions_m)
        nrm.append(p.normals)
        tri.append(p.triangles.astype(np.int64) + offset)
        uv.append(np.tile(np.asarray(palette_uv(scene, p.material), np.float32), (k, 1)))
        col.append(np.tile(np.asarray(scene.material(p.material).rgb, np.float32) / 255, (k, 1)))
        offset += k
    if not pos:
        raise ExportError(f"scene {scene.title!r} has no geometry to export")
    return (
        np.concatenate(pos).astype(np.float32),
        np.concatenate(nrm).astype(np.float32),
        np.concatenate(tri).astype(np.int32),
        np.concatenate(uv).astype(np.float32),
        np.concatenate(col).astype(np.float32),
    )


def write_glb(scene: Scene, path: Path) -> int:
    """Write the scene as a GLB; returns its size in bytes."""
    o3d = _open3d()
    pos, nrm, tri, uv, _ = _arrays(scene)
    t = o3d.t.geometry.TriangleMesh()
    t.vertex.positions = o3d.core.Tensor(pos)
    t.vertex.normals = o3d.core.Tensor(nrm)
    # open3d keeps UVs with OpenGL's origin (bottom left) and flips V when it writes glTF
    uv_gl = np.ascontiguousarray(np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1), np.float32)
    t.vertex.texture_uvs = o3d.core.Tensor(uv_gl)
    t.triangle.indices = o3d.core.Tensor(tri)
    t.material.set_default_properties()
    t.material.material_name = "defaultLit"
    t.material.scalar_properties["metallic"] = 0.0
    t.material.scalar_properties["roughness"] = 0.7
    t.material.texture_maps["albedo"] = o3d.t.geometry.Image(
        o3d.core.Tensor(np.ascontiguousarray(palette_image(scene)))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.t.io.write_triangle_mesh(str(path), t):
        raise ExportError(f"open3d could not write {path}")
    return path.stat().st_size


def glb_bytes(scene: Scene) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ar_glb_") as tmp:
        p = Path(tmp) / "scene.glb"
        write_glb(scene, p)
        return p.read_bytes()


def render_png(scene: Scene, path: Path, width_px: int = 1280, height_px: int = 720) -> float:
    """Render a snapshot headless; returns the share of pixels that are not background.

    Raises ExportError when the image is blank (nothing but background)."""
    o3d = _open3d()
    pos, _, tri, _, col = _arrays(scene)
    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(pos.astype(np.float64)), o3d.utility.Vector3iVector(tri)
    )
    # vertices are not shared between faces, so these are the face normals; normals assigned
    # from Python are ignored by the legacy renderer's lighting (flat, unlit output)
    m.compute_vertex_normals()
    m.vertex_colors = o3d.utility.Vector3dVector(col.astype(np.float64))
    lo, hi = np.asarray(scene.bounds_m()[0]), np.asarray(scene.bounds_m()[1])
    centre = (lo + hi) / 2
    front = np.array([0.45, 0.75, 1.0]) if scene.kind == "territory" else np.array([0.6, 0.45, 1.0])
    with _RENDER_LOCK:
        vis = o3d.visualization.Visualizer()
        if not vis.create_window(
            window_name="ar_viewer", width=width_px, height=height_px, visible=False
        ):
            raise ExportError("could not create an offscreen OpenGL context (Mesa/EGL missing?)")
        try:
            vis.add_geometry(m)
            opt = vis.get_render_option()
            opt.background_color = np.array([1.0, 1.0, 1.0])
            vc = vis.get_view_control()
            vc.set_lookat(centre)
            vc.set_front(front / np.linalg.norm(front))
            vc.set_up([0.0, 1.0, 0.0])
            vc.set_zoom(0.5 if scene.kind == "territory" else 0.62)
            vis.poll_events()
            vis.update_renderer()
            img = np.asarray(vis.capture_screen_float_buffer(do_render=True))
        finally:
            vis.destroy_window()
    if img.shape[:2] != (height_px, width_px):
        raise ExportError(
            f"rendered {img.shape[1]}x{img.shape[0]}, expected {width_px}x{height_px}"
        )
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    coverage = float((rgb.min(axis=2) < 250).mean())
    if coverage == 0.0:
        raise ExportError(f"the snapshot of {scene.title!r} is blank")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_image(str(path), o3d.geometry.Image(np.ascontiguousarray(rgb))):
        raise ExportError(f"open3d could not write {path}")
    return coverage
