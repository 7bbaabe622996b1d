"""Union of closed bodies that cross or touch each other (manifold3d, Apache-2.0).

A surface made of overlapping closed pieces (a naive union of frusta: every neurite
segment its own closed tube) has crossing faces between bodies and coincident faces where
pieces abut.  Each body is closed, manifold and free of self-crossings after the local
repair; the exact boolean union of all of them (Manifold's symbolic perturbation makes the
coincident faces merge) is one closed manifold surface.
"""

from __future__ import annotations

import numpy as np

from mf_dmri.geometry.errors import MeshError
from mf_dmri.geometry.intersections import candidate_pairs, surfaces_intersect
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.topology import split_bodies


def crossing_pairs(bodies: list[SurfaceMesh]) -> list[tuple[int, int]]:
    """Pairs of bodies whose faces cross or overlap (coincident faces included)."""
    boxes = np.stack([b.bounds() for b in bodies])
    found = []
    for i, j in candidate_pairs(boxes):
        if len(surfaces_intersect(bodies[i], bodies[j])):
            found.append((int(i), int(j)))
    return found


def _manifold(body: SurfaceMesh, origin: np.ndarray, scale: float):
    import manifold3d

    mesh = manifold3d.Mesh64(
        vert_properties=np.ascontiguousarray((body.vertices - origin) / scale),
        tri_verts=np.ascontiguousarray(body.faces, dtype=np.uint32),
    )
    solid = manifold3d.Manifold(mesh)
    if solid.status() != manifold3d.Error.NoError:
        raise MeshError(
            f"manifold3d refused a body for the union ({solid.status()}): the body is not a "
            "closed oriented manifold after the local repair; fix it in a mesh editor"
        )
    return solid


def union_of_bodies(surface: SurfaceMesh) -> tuple[SurfaceMesh, int]:
    """The union of the crossing bodies of ``surface`` [m] (bodies crossing none are kept
    as they are).  Returns (surface, number of bodies merged)."""
    import manifold3d

    bodies = split_bodies(surface)
    pairs = crossing_pairs(bodies)
    if not pairs:
        return surface, 0
    involved = sorted({i for pair in pairs for i in pair})
    origin = surface.vertices.mean(axis=0)
    scale = surface.extent()
    solids = [_manifold(bodies[i], origin, scale) for i in involved]
    union = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add)
    mesh = union.to_mesh64()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3] * scale + origin
    merged = SurfaceMesh(vertices, np.asarray(mesh.tri_verts, dtype=np.int64))
    kept = [b for i, b in enumerate(bodies) if i not in set(involved)]
    from mf_dmri.geometry.surface import concatenate

    return concatenate([merged, *kept]), len(involved)
