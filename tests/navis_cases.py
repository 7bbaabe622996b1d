"""Real cell surfaces of the geometry tests: the navis example meshes (8 nm voxel units)
and a cut piece of one of them (tests/test_geometry_repair.py, tests/test_geometry_remesh.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mf_dmri.geometry import SurfaceMesh
from mf_dmri.units import um


def navis_surface(neuron_id: int) -> SurfaceMesh:
    """The navis example mesh ``neuron_id`` in metres (skips the test without navis)."""
    navis = pytest.importorskip("navis")
    neuron = next(n for n in navis.example_neurons(kind="mesh") if int(n.id) == neuron_id)
    return SurfaceMesh(np.asarray(neuron.vertices, float) * 8e-9, np.asarray(neuron.faces))


def cut_navis_piece() -> SurfaceMesh:
    """The 24 um cube of navis neuron 1734350788 around a cluster of folds: the piece of
    surface connected inside the cube (591 faces), unrepaired (open cut ends, non-manifold
    edges, fins, crossing face pairs)."""
    from mf_dmri.geometry.repair_steps import compact
    from mf_dmri.geometry.topology import face_components

    surface = navis_surface(1734350788)
    centre = np.array([124.0, 295.9, 224.2]) * um
    inside = np.abs(surface.vertices[surface.faces] - centre).max(axis=(1, 2)) < 12 * um
    faces = surface.faces[inside]
    piece = face_components(faces, surface.n_vertices)
    vertices, faces = compact(surface.vertices, faces[piece == np.argmax(np.bincount(piece))])
    return SurfaceMesh(vertices, faces)


def subdivided(surface: SurfaceMesh, times: int) -> SurfaceMesh:
    """The same surface with every triangle split into four at its edge midpoints,
    ``times`` times (the shape and its defects unchanged, 4**times as many faces)."""
    import trimesh

    vertices, faces = surface.vertices, surface.faces
    for _ in range(times):
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    return SurfaceMesh(np.asarray(vertices), np.asarray(faces))
