"""The usd-core adapter: a Scene to a USDZ for iOS Quick Look.

One UsdGeom.Mesh per part, each bound to a UsdPreviewSurface material (linear diffuse
colour, metallic, roughness); Y up, metres; packaged with
UsdUtils.CreateNewARKitUsdzPackage, which checks ARKit's constraints.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from ar_viewer.errors import ExportError
from ar_viewer.model import Scene
from ar_viewer.palette import srgb_to_linear


def _ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and not s[0].isdigit() else f"_{s}"


def write_usdz(scene: Scene, path: Path) -> int:
    """Write the scene as a USDZ; returns its size in bytes."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

    if not scene.parts:
        raise ExportError(f"scene {scene.title!r} has no geometry to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ar_usd_") as tmp:
        usdc = Path(tmp) / "scene.usdc"
        stage = Usd.Stage.CreateNew(str(usdc))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        root = UsdGeom.Xform.Define(stage, "/Scene")
        stage.SetDefaultPrim(root.GetPrim())
        root.GetPrim().SetMetadata("documentation", scene.title)
        materials = {}
        for m in scene.materials:
            mat = UsdShade.Material.Define(stage, f"/Scene/Materials/{_ident(m.name)}")
            shader = UsdShade.Shader.Define(stage, f"/Scene/Materials/{_ident(m.name)}/Surface")
            shader.CreateIdAttr("UsdPreviewSurface")
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(
                Gf.Vec3f(*srgb_to_linear(m.rgb))
            )
            shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(m.metallic)
            shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(m.roughness)
            mat.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
            materials[m.name] = mat
        for p in scene.parts:
            geom = UsdGeom.Mesh.Define(stage, f"/Scene/Geometry/{_ident(p.name)}")
            geom.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(p.positions_m))
            geom.CreateFaceVertexCountsAttr(Vt.IntArray([3] * p.triangle_count))
            geom.CreateFaceVertexIndicesAttr(
                Vt.IntArray.FromNumpy(p.triangles.reshape(-1).astype("int32"))
            )
            geom.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(p.normals))
            geom.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
            geom.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
            geom.CreateDoubleSidedAttr(p.name == "ground")
            lo, hi = p.positions_m.min(axis=0), p.positions_m.max(axis=0)
            geom.CreateExtentAttr(
                Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))])
            )
            UsdShade.MaterialBindingAPI.Apply(geom.GetPrim()).Bind(materials[p.material])
        stage.GetRootLayer().Save()
        if path.exists():
            path.unlink()
        if not UsdUtils.CreateNewARKitUsdzPackage(Sdf.AssetPath(str(usdc)), str(path)):
            raise ExportError(f"usd-core could not package {path}")
    return path.stat().st_size


def usdz_bytes(scene: Scene) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ar_usdz_") as tmp:
        p = Path(tmp) / "scene.usdz"
        write_usdz(scene, p)
        return p.read_bytes()
