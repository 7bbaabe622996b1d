"""Element sizing for tetrahedralisation: target edge from max_volume/length_scale, surface
refinement that keeps the geometry, and local sizes from the local thickness."""

from __future__ import annotations

import numpy as np

from mf_dmri.geometry.compartments import CompartmentModel
from mf_dmri.geometry.remesh_ops import vertex_normals
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.thickness import local_thickness


def local_sizes(model: CompartmentModel, factor: float):
    """Points and target sizes [scaled units]: ``factor`` x the local thickness at every
    surface vertex and at the midpoint across the thickness, where that size is below the
    surface's longest edge.

    A size at least the longest surface edge never binds (the boundary triangles already
    ask for less), so the thickness rays are cast only ``longest edge / factor`` far
    (:func:`local_thickness` with ``reach``) and the vertices with no wall within that
    reach get no size.  The unbounded cast tests every triangle near a ray across the
    whole cell: on a 51k-triangle remeshed neuron it needed ~70 M ray-triangle pairs and
    ran out of memory (over 18 GB), where the bounded one takes ~20 s and 1.2 GB."""
    points, sizes = [], []
    for surface in model.surfaces:
        reach = _longest_edge(surface) / factor
        thickness = local_thickness(surface, reach=reach)
        thin = thickness < reach
        normals = vertex_normals(surface.vertices, surface.faces)[thin]
        vertices, thickness = surface.vertices[thin], thickness[thin]
        points += [vertices, vertices - 0.5 * thickness[:, None] * normals]
        sizes += [thickness * factor] * 2
    return np.concatenate(points), np.concatenate(sizes)


def _longest_edge(surface: SurfaceMesh) -> float:
    tri = surface.triangles()
    return float(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max())


def refine_surfaces(model: CompartmentModel, max_edge: float) -> CompartmentModel:
    """Split surface edges longer than ``max_edge`` at their midpoints: the polyhedral
    geometry (and so every volume) is unchanged, only the boundary resolution grows."""
    import trimesh.remesh

    refined = []
    for surface in model.surfaces:
        if _longest_edge(surface) > max_edge:
            vertices, faces = trimesh.remesh.subdivide_to_size(
                surface.vertices, surface.faces, max_edge, max_iter=20
            )
            surface = SurfaceMesh(vertices, faces)
        refined.append(surface)
    return CompartmentModel(
        tuple(refined), model.parents, model.volumes, model.interior_points, model.names
    )


def target_edge(max_volume: float | None, length_scale: float | None) -> float | None:
    edges = []
    if length_scale is not None:
        if not length_scale > 0:
            raise ValueError(f"length_scale must be positive [m], got {length_scale!r}")
        edges.append(float(length_scale))
    if max_volume is not None:
        if not max_volume > 0:
            raise ValueError(f"max_volume must be positive [m^3], got {max_volume!r}")
        edges.append(float((6 * np.sqrt(2) * max_volume) ** (1 / 3)))
    return min(edges) if edges else None
