"""Mesh primitives in numpy: columns, markers, ribbons, cylinders, flat polygons.

Every builder returns a MeshData with flat shading (each face has its own vertices, so a
normal per face) and counter-clockwise triangles seen from outside. Builders of many
instances (columns, markers) are vectorised: 10,000 columns take milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from ar_viewer.model import FloatArray, IndexArray, Part


@dataclass(frozen=True, slots=True)
class MeshData:
    positions_m: FloatArray
    normals: FloatArray
    triangles: IndexArray

    @property
    def triangle_count(self) -> int:
        return int(self.triangles.shape[0])


def empty() -> MeshData:
    return MeshData(
        np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32)
    )


def merge(meshes: list[MeshData]) -> MeshData:
    meshes = [m for m in meshes if m.triangle_count]
    if not meshes:
        return empty()
    offsets = np.cumsum([0] + [m.positions_m.shape[0] for m in meshes[:-1]])
    tris = np.concatenate(
        [m.triangles + np.uint32(o) for m, o in zip(meshes, offsets, strict=True)]
    )
    return MeshData(
        np.concatenate([m.positions_m for m in meshes]).astype(np.float32),
        np.concatenate([m.normals for m in meshes]).astype(np.float32),
        tris.astype(np.uint32),
    )


def to_part(name: str, material: str, mesh: MeshData) -> Part:
    return Part(name, material, mesh.positions_m, mesh.normals, mesh.triangles)


def _quads(corners: FloatArray, normals: FloatArray) -> MeshData:
    """Quads (K, 4, 3) counter-clockwise, with one normal each (K, 3), as 2K triangles."""
    k = corners.shape[0]
    pos = corners.reshape(k * 4, 3)
    nrm = np.repeat(normals, 4, axis=0)
    base = (np.arange(k, dtype=np.uint32) * 4)[:, None]
    tris = np.concatenate(
        [base + np.array([0, 1, 2], np.uint32), base + np.array([0, 2, 3], np.uint32)], axis=1
    )
    return MeshData(pos.astype(np.float32), nrm.astype(np.float32), tris.reshape(k * 2, 3))


# Unit box faces (no bottom: columns stand on the ground): corners in [-1, 1] x [0, 1] x [-1, 1].
_BOX_FACES = np.array(
    [
        [[-1, 1, 1], [1, 1, 1], [1, 1, -1], [-1, 1, -1]],  # top (+Y)
        [[-1, 0, 1], [1, 0, 1], [1, 1, 1], [-1, 1, 1]],  # +Z
        [[1, 0, -1], [-1, 0, -1], [-1, 1, -1], [1, 1, -1]],  # -Z
        [[1, 0, 1], [1, 0, -1], [1, 1, -1], [1, 1, 1]],  # +X
        [[-1, 0, -1], [-1, 0, 1], [-1, 1, 1], [-1, 1, -1]],  # -X
    ],
    np.float32,
)
_BOX_NORMALS = np.array([[0, 1, 0], [0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0]], np.float32)
COLUMN_TRIANGLES = 10


def columns(
    centres_xz: FloatArray, half_size_m: FloatArray, heights_m: FloatArray, base_y_m: float = 0.0
) -> MeshData:
    """Square columns standing on y=base_y: one per centre, 10 triangles each (no bottom)."""
    n = centres_xz.shape[0]
    if n == 0:
        return empty()
    scale = np.stack([half_size_m, np.maximum(heights_m, 1e-4), half_size_m], axis=1)[
        :, None, None, :
    ]
    offset = np.stack([centres_xz[:, 0], np.full(n, base_y_m), centres_xz[:, 1]], axis=1)[
        :, None, None, :
    ]
    corners = _BOX_FACES[None] * scale + offset  # (n, 5, 4, 3)
    normals = np.broadcast_to(_BOX_NORMALS[None], (n, 5, 3))
    return _quads(corners.reshape(n * 5, 4, 3).astype(np.float32), normals.reshape(n * 5, 3))


_OCTA_V = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32
)
_OCTA_F = np.array(
    [[0, 2, 4], [4, 2, 1], [1, 2, 5], [5, 2, 0], [4, 3, 0], [1, 3, 4], [5, 3, 1], [0, 3, 5]],
    np.uint32,
)
MARKER_TRIANGLES = 8


def markers(centres_m: FloatArray, radius_m: float) -> MeshData:
    """Octahedron markers (8 triangles each) centred on the given points (n, 3)."""
    n = centres_m.shape[0]
    if n == 0:
        return empty()
    face_v = _OCTA_V[_OCTA_F]  # (8, 3, 3)
    fn = np.cross(face_v[:, 1] - face_v[:, 0], face_v[:, 2] - face_v[:, 0])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    pos = face_v[None] * radius_m + centres_m[:, None, None, :]
    nrm = np.broadcast_to(fn[None, :, None, :], (n, 8, 3, 3))
    tris = np.arange(n * 24, dtype=np.uint32).reshape(n * 8, 3)
    return MeshData(
        pos.reshape(-1, 3).astype(np.float32), nrm.reshape(-1, 3).astype(np.float32), tris
    )


def ribbon(points_xz: FloatArray, width_m: float, y_m: float) -> MeshData:
    """A flat strip of quads along a polyline (a route drawn on the ground), facing up."""
    if points_xz.shape[0] < 2:
        return empty()
    a, b = points_xz[:-1], points_xz[1:]
    d = b - a
    length = np.linalg.norm(d, axis=1)
    keep = length > 1e-9
    a, b, d, length = a[keep], b[keep], d[keep], length[keep]
    if a.shape[0] == 0:
        return empty()
    side = np.stack([-d[:, 1], d[:, 0]], axis=1) / length[:, None] * (width_m / 2)
    # extend each segment by half a width so consecutive segments overlap at the joints
    ext = d / length[:, None] * (width_m / 2)
    a, b = a - ext, b + ext
    quad_xz = np.stack([a - side, b - side, b + side, a + side], axis=1)  # (k, 4, 2)
    corners = np.stack([quad_xz[..., 0], np.full(quad_xz.shape[:2], y_m), quad_xz[..., 1]], axis=2)
    up = np.tile(np.array([[0, 1, 0]], np.float32), (corners.shape[0], 1))
    mesh = _quads(corners.astype(np.float32), up)
    return _face_up(mesh)


def _face_up(mesh: MeshData) -> MeshData:
    """Flip triangles of a horizontal mesh whose winding points down."""
    p = mesh.positions_m[mesh.triangles]
    ny = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 1]
    tris = mesh.triangles.copy()
    down = ny < 0
    tris[down] = tris[down][:, ::-1]
    return MeshData(mesh.positions_m, mesh.normals, tris)


def flat_polygons(polygons_xz: list[shapely.Polygon], y_m: float) -> MeshData:
    """Triangulate polygons (in the x-z plane, holes respected) into a plane facing up."""
    meshes: list[MeshData] = []
    for poly in polygons_xz:
        if poly.is_empty:
            continue
        tris = shapely.get_parts(shapely.constrained_delaunay_triangles(poly))
        if len(tris) == 0:
            continue
        coords = shapely.get_coordinates(shapely.get_exterior_ring(tris))  # 4 points each
        coords = coords.reshape(len(tris), 4, 2)[:, :3, :]
        pos = np.stack([coords[..., 0], np.full(coords.shape[:2], y_m), coords[..., 1]], axis=2)
        n = pos.shape[0]
        up = np.tile(np.array([[0, 1, 0]], np.float32), (n * 3, 1))
        tri_idx = np.arange(n * 3, dtype=np.uint32).reshape(n, 3)
        meshes.append(_face_up(MeshData(pos.reshape(-1, 3).astype(np.float32), up, tri_idx)))
    return merge(meshes)


def _frame(axis: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Two unit vectors perpendicular to axis and to each other."""
    a = axis / np.linalg.norm(axis)
    helper = np.array([0, 1, 0], np.float32) if abs(a[1]) < 0.9 else np.array([1, 0, 0], np.float32)
    u = np.cross(a, helper)
    u /= np.linalg.norm(u)
    v = np.cross(a, u)
    return u.astype(np.float32), v.astype(np.float32)


def cylinder(
    start_m: tuple[float, float, float],
    end_m: tuple[float, float, float],
    radius_m: float,
    segments: int = 24,
) -> MeshData:
    """A closed cylinder from start to end (sides flat-shaded per segment, two caps)."""
    s = np.asarray(start_m, np.float32)
    e = np.asarray(end_m, np.float32)
    axis = e - s
    if float(np.linalg.norm(axis)) < 1e-9:
        return empty()
    u, v = _frame(axis)
    ang = np.linspace(0, 2 * np.pi, segments + 1)[:-1]
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v  # (seg, 3) unit directions
    nxt = np.roll(ring, -1, axis=0)
    side = np.stack(
        [s + ring * radius_m, s + nxt * radius_m, e + nxt * radius_m, e + ring * radius_m], axis=1
    )
    mid = ring + nxt
    side_n = mid / np.linalg.norm(mid, axis=1, keepdims=True)
    sides = _quads(side.astype(np.float32), side_n.astype(np.float32))
    a_unit = (axis / np.linalg.norm(axis)).astype(np.float32)
    caps: list[MeshData] = []
    for centre, normal, flip in ((e, a_unit, False), (s, -a_unit, True)):
        p0 = np.broadcast_to(centre, (segments, 3))
        p1 = centre + ring * radius_m
        p2 = centre + nxt * radius_m
        tri = np.stack([p0, p2, p1] if flip else [p0, p1, p2], axis=1)
        pos = tri.reshape(-1, 3).astype(np.float32)
        caps.append(
            MeshData(
                pos,
                np.tile(normal, (pos.shape[0], 1)).astype(np.float32),
                np.arange(segments * 3, dtype=np.uint32).reshape(segments, 3),
            )
        )
    return merge([sides, *caps])


def box(centre_m: tuple[float, float, float], size_m: tuple[float, float, float]) -> MeshData:
    """A closed axis-aligned box."""
    cx, cy, cz = centre_m
    sx, sy, sz = (s / 2 for s in size_m)
    top = columns(
        np.array([[cx, cz]], np.float32), np.array([1.0], np.float32), np.array([1.0], np.float32)
    )
    pos = top.positions_m.copy()
    pos[:, 0] = cx + (pos[:, 0] - cx) * sx
    pos[:, 2] = cz + (pos[:, 2] - cz) * sz
    pos[:, 1] = cy - sy + pos[:, 1] * 2 * sy
    bottom_corners = np.array(
        [
            [
                [cx - sx, cy - sy, cz - sz],
                [cx + sx, cy - sy, cz - sz],
                [cx + sx, cy - sy, cz + sz],
                [cx - sx, cy - sy, cz + sz],
            ]
        ],
        np.float32,
    )
    bottom = _quads(bottom_corners, np.array([[0, -1, 0]], np.float32))
    return merge([MeshData(pos.astype(np.float32), top.normals, top.triangles), bottom])


def sphere(centre_m: tuple[float, float, float], radius_m: float) -> MeshData:
    """A low-polygon sphere (octahedron subdivided once: 32 triangles)."""
    face_v = _OCTA_V[_OCTA_F]
    a, b, c = face_v[:, 0], face_v[:, 1], face_v[:, 2]
    ab, bc, ca = (a + b), (b + c), (c + a)
    sub = np.concatenate(
        [np.stack(t, axis=1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    )
    sub = sub / np.linalg.norm(sub, axis=2, keepdims=True)
    fn = np.cross(sub[:, 1] - sub[:, 0], sub[:, 2] - sub[:, 0])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    pos = sub * radius_m + np.asarray(centre_m, np.float32)
    nrm = np.repeat(fn, 3, axis=0)
    n = sub.shape[0]
    return MeshData(
        pos.reshape(-1, 3).astype(np.float32),
        nrm.astype(np.float32),
        np.arange(n * 3, dtype=np.uint32).reshape(n, 3),
    )
