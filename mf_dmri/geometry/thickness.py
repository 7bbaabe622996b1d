"""Local thickness of a closed surface: distance from each vertex, along the inward normal,
to the opposite wall (ray casting with trimesh's R-tree ray tests)."""

from __future__ import annotations

import numpy as np
import trimesh

from mf_dmri.geometry.surface import SurfaceMesh


def local_thickness(mesh: SurfaceMesh) -> np.ndarray:
    """Thickness at each vertex (V,) [m]: distance to the nearest surface hit along the
    inward vertex normal, ignoring hits closer than half the shortest incident edge (the
    vertex's own faces); the bounding-box diagonal where the ray escapes."""
    scale = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    unit = trimesh.Trimesh(mesh.vertices / scale, mesh.faces, process=False)
    normals = np.asarray(unit.vertex_normals)
    edges = np.asarray(unit.edges_unique)
    lengths = np.asarray(unit.edges_unique_length)
    shortest = np.full(len(normals), np.inf)
    np.minimum.at(shortest, edges[:, 0], lengths)
    np.minimum.at(shortest, edges[:, 1], lengths)
    origins = np.asarray(unit.vertices)
    locations, ray_index, _ = unit.ray.intersects_location(origins, -normals, multiple_hits=True)
    distance = np.linalg.norm(locations - origins[ray_index], axis=1)
    valid = distance > 0.5 * shortest[ray_index]
    thickness = np.full(mesh.n_vertices, 1.0)
    np.minimum.at(thickness, ray_index[valid], distance[valid])
    return thickness * scale
