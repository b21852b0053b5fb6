"""A glTF 2.0 binary check for tests: the structural rules of the Khronos validator that
matter for viewers (buffers, views, accessors, index range, min/max, unit normals,
materials and embedded textures), plus decoding every primitive with its colours."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pygltflib

_COMPONENT = {
    5120: np.int8,
    5121: np.uint8,
    5122: np.int16,
    5123: np.uint16,
    5125: np.uint32,
    5126: np.float32,
}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass
class DecodedPrimitive:
    positions: npt.NDArray[np.float32]
    normals: npt.NDArray[np.float32] | None
    uvs: npt.NDArray[np.float32] | None
    indices: npt.NDArray[np.uint32]
    texture_rgb: npt.NDArray[np.uint8] | None
    base_color: tuple[float, float, float, float]

    def vertex_rgb(self) -> npt.NDArray[np.float64]:
        """sRGB 0..255 colour of each vertex: the base colour times the texture at its UV."""
        factor = np.asarray(self.base_color[:3]) * 255
        if self.texture_rgb is None or self.uvs is None:
            return np.tile(factor, (self.positions.shape[0], 1))
        h, w, _ = self.texture_rgb.shape
        px = np.clip((self.uvs[:, 0] * w).astype(int), 0, w - 1)
        py = np.clip((self.uvs[:, 1] * h).astype(int), 0, h - 1)
        rgb: npt.NDArray[np.float64] = self.texture_rgb[py, px].astype(np.float64) * (factor / 255)
        return rgb


def _accessor(g: pygltflib.GLTF2, blob: bytes, index: int) -> npt.NDArray[np.generic]:
    acc = g.accessors[index]
    assert acc.bufferView is not None and 0 <= acc.bufferView < len(g.bufferViews), (
        "accessor without a valid bufferView"
    )
    view = g.bufferViews[acc.bufferView]
    assert view.buffer == 0
    dtype = np.dtype(_COMPONENT[acc.componentType])
    n = _NCOMP[acc.type]
    elem = dtype.itemsize * n
    stride = view.byteStride or elem
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    needed = (acc.count - 1) * stride + elem if acc.count else 0
    assert (acc.byteOffset or 0) + needed <= view.byteLength, (
        f"accessor {index} overruns its bufferView"
    )
    assert (view.byteOffset or 0) + view.byteLength <= len(blob), (
        f"bufferView {acc.bufferView} overruns the buffer"
    )
    assert start % dtype.itemsize == 0, f"accessor {index} is not aligned"
    if stride == elem:
        arr = np.frombuffer(blob, dtype, acc.count * n, start).reshape(acc.count, n)
    else:
        raw = np.frombuffer(blob, np.uint8, needed, start)
        arr = np.stack(
            [
                np.frombuffer(raw[i * stride : i * stride + elem].tobytes(), dtype)
                for i in range(acc.count)
            ]
        )
    if acc.min is not None and acc.max is not None and acc.count:
        assert np.allclose(arr.min(axis=0), acc.min, atol=1e-5), f"accessor {index} min is wrong"
        assert np.allclose(arr.max(axis=0), acc.max, atol=1e-5), f"accessor {index} max is wrong"
    return arr


def check_glb(data: bytes) -> list[DecodedPrimitive]:
    """Assert the GLB is well formed; return its primitives decoded."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2, "not a glTF 2.0 binary"
    assert length == len(data), "header length differs from the file length"
    g = pygltflib.GLTF2.load_from_bytes(data)
    assert g.asset.version == "2.0"
    blob = g.binary_blob()
    assert blob is not None and len(g.buffers) == 1 and g.buffers[0].uri is None
    assert g.buffers[0].byteLength <= len(blob)
    assert g.scenes and g.nodes and g.meshes, "no scene, node or mesh"
    assert g.materials, "no material"
    out: list[DecodedPrimitive] = []
    for mesh in g.meshes:
        for prim in mesh.primitives:
            assert prim.mode in (None, 4), "only triangles are expected"
            assert prim.material is not None and 0 <= prim.material < len(g.materials), (
                "primitive without material"
            )
            pos = _accessor(g, blob, prim.attributes.POSITION).astype(np.float32)
            assert g.accessors[prim.attributes.POSITION].min is not None, "POSITION needs min/max"
            assert np.isfinite(pos).all()
            nrm = None
            if prim.attributes.NORMAL is not None:
                nrm = _accessor(g, blob, prim.attributes.NORMAL).astype(np.float32)
                assert nrm.shape == pos.shape
                assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-3), (
                    "normals are not unit length"
                )
            uvs = None
            if prim.attributes.TEXCOORD_0 is not None:
                uvs = _accessor(g, blob, prim.attributes.TEXCOORD_0).astype(np.float32)
                assert uvs.shape == (pos.shape[0], 2)
            assert prim.indices is not None
            idx = _accessor(g, blob, prim.indices).reshape(-1).astype(np.uint32)
            assert idx.size % 3 == 0
            assert int(idx.max(initial=0)) < pos.shape[0], "index out of range"
            mat = g.materials[prim.material]
            pbr = mat.pbrMetallicRoughness
            assert pbr is not None, "material without PBR metallic-roughness"
            tex_rgb = None
            if pbr.baseColorTexture is not None:
                tex = g.textures[pbr.baseColorTexture.index]
                image = g.images[tex.source]
                assert image.bufferView is not None and image.mimeType == "image/png"
                view = g.bufferViews[image.bufferView]
                png = blob[(view.byteOffset or 0) : (view.byteOffset or 0) + view.byteLength]
                assert png[:8] == b"\x89PNG\r\n\x1a\n", "embedded texture is not a PNG"
                tex_rgb = _decode_png(png)
                assert uvs is not None, "a texture without texture coordinates"
            out.append(
                DecodedPrimitive(
                    pos,
                    nrm,
                    uvs,
                    idx.reshape(-1, 3),
                    tex_rgb,
                    tuple(pbr.baseColorFactor or (1, 1, 1, 1)),
                )
            )
    return out


def _decode_png(png: bytes) -> npt.NDArray[np.uint8]:
    import tempfile
    from pathlib import Path

    import open3d as o3d  # the project's image reader; PNGs are small here

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.png"
        p.write_bytes(png)
        img = np.asarray(o3d.io.read_image(p))
    return img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)


def read_png(path: str) -> npt.NDArray[np.uint8]:
    from pathlib import Path

    import open3d as o3d

    img = np.asarray(o3d.io.read_image(Path(path)))
    return img[..., :3]
