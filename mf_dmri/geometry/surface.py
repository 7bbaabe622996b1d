"""The triangle surface mesh type used by the whole geometry layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SurfaceMesh:
    """A triangle surface in SI units.

    vertices: vertex positions, shape (V, 3) [m], float64.
    faces: vertex indices of each triangle, shape (F, 3), int64.  Outward winding
    (counter-clockwise seen from outside) is expected for closed surfaces; it is checked by
    :func:`mf_dmri.geometry.check_surface`, not here.

    Construction validates only shapes, finiteness and index ranges; the geometric checks
    (watertight, winding, self-intersections, ...) are in :mod:`mf_dmri.geometry.checks`.
    """

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        vertices = np.array(self.vertices, dtype=np.float64)
        faces_in = np.asarray(self.faces)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3) [m], got {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise ValueError("vertices contain NaN or infinite coordinates; pass finite [m]")
        if faces_in.size and not np.issubdtype(faces_in.dtype, np.integer):
            raise TypeError(f"faces must be integer vertex indices, got dtype {faces_in.dtype}")
        faces = np.array(faces_in, dtype=np.int64)
        if faces.size == 0:
            faces = faces.reshape(0, 3)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3) (triangles), got {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(
                f"faces index vertices outside 0..{len(vertices) - 1}; "
                "the face array does not belong to this vertex array"
            )
        object.__setattr__(self, "vertices", _readonly(vertices))
        object.__setattr__(self, "faces", _readonly(faces))

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))

    def triangles(self) -> np.ndarray:
        """Corner coordinates of every face, shape (F, 3, 3) [m]."""
        return self.vertices[self.faces]

    def face_areas(self) -> np.ndarray:
        """Area of every face, shape (F,) [m^2]."""
        tri = self.triangles()
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return 0.5 * np.linalg.norm(cross, axis=1)

    def area(self) -> float:
        """Total surface area [m^2]."""
        return float(self.face_areas().sum())

    def signed_volume(self) -> float:
        """Enclosed volume by the divergence theorem [m^3]; positive for outward winding.

        Meaningful only for a closed, consistently wound surface.  Computed relative to the
        centroid of the vertices to limit cancellation.
        """
        tri = self.triangles() - self.vertices.mean(axis=0)
        return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)

    def bounds(self) -> np.ndarray:
        """Axis-aligned bounding box, shape (2, 3): minimum and maximum corner [m]."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def extent(self) -> float:
        """Largest side of the axis-aligned bounding box [m]."""
        lo, hi = self.bounds()
        return float((hi - lo).max())

    def translated(self, offset: np.ndarray) -> SurfaceMesh:
        """A copy moved by ``offset`` (3,) [m]."""
        return SurfaceMesh(self.vertices + np.asarray(offset, dtype=np.float64), self.faces)

    def flipped(self) -> SurfaceMesh:
        """A copy with every face's winding reversed (normals point the other way)."""
        return SurfaceMesh(self.vertices, self.faces[:, ::-1])


def concatenate(meshes: list[SurfaceMesh] | tuple[SurfaceMesh, ...]) -> SurfaceMesh:
    """Stack several surfaces into one mesh (no merging, no boolean)."""
    if not meshes:
        raise ValueError("concatenate needs at least one SurfaceMesh")
    offsets = np.cumsum([0] + [m.n_vertices for m in meshes[:-1]])
    vertices = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + off for m, off in zip(meshes, offsets, strict=True)])
    return SurfaceMesh(vertices, faces)
