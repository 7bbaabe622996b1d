"""Local thickness of a closed surface: distance from each vertex, along the inward normal,
to the opposite wall (ray casting with trimesh's R-tree ray tests)."""

from __future__ import annotations

import numpy as np
import trimesh

from mf_dmri.geometry.surface import SurfaceMesh


def local_thickness(mesh: SurfaceMesh) -> np.ndarray:
    """Thickness at each vertex (V,) [m]: distance to the first surface hit along the
    inward vertex normal; the bounding-box diagonal where the ray escapes."""
    scale = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    unit = trimesh.Trimesh(mesh.vertices / scale, mesh.faces, process=False)
    normals = np.asarray(unit.vertex_normals)
    offset = 1e-7
    origins = np.asarray(unit.vertices) - offset * normals
    locations, ray_index, _ = unit.ray.intersects_location(origins, -normals,
                                                           multiple_hits=False)
    thickness = np.full(mesh.n_vertices, 1.0)
    distance = np.linalg.norm(locations - origins[ray_index], axis=1) + offset
    thickness[ray_index] = distance
    return thickness * scale
