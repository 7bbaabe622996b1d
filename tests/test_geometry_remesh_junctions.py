"""Sliver triangles at the junctions of a skeleton surface (the union of round cones of
:func:`morphology_surface`) are removed by :func:`remesh_surface`.

The union's intersection curves leave cap triangles (one angle near 180 deg, smallest
0.02 deg on the Y-junction below).  Before the fix the remesher kept them (smallest angle
0.15 deg after remeshing, 12 triangles below 1 deg): a cap's normal is noise, so the
flip of its long edge was refused as "not coplanar", its vertices counted as a crease
(never smoothed), and smoothing folded small faces over (pleats) that then locked
themselves the same way.  The operations' own tests below are checked on hand-built
configurations whose answer is known."""

from __future__ import annotations

import numpy as np

from mf_dmri.geometry import check_surface, remesh_surface, repair_surface, tetrahedralize
from mf_dmri.geometry.morphology import Morphology
from mf_dmri.geometry.morphology_surface import morphology_surface
from mf_dmri.geometry.remesh import min_triangle_angles
from mf_dmri.geometry.remesh_ops import (
    crease_vertices,
    flip_edges,
    folded_faces,
    unfolded_move,
)
from mf_dmri.units import um


def _branching_neurite() -> Morphology:
    """A tapered neurite (0.6 -> 0.5 um) that forks twice (Y-junctions, radii 0.3-0.4 um)."""
    positions = np.array(
        [[0, 0, 0], [0, 0, 5], [0, 0, 10], [0, 3, 14], [0, -3, 14], [0, 5, 18], [1, -6, 17]]
        + [[0, 3.5, 20]],
        dtype=np.float64,
    )
    radii = np.array([0.6, 0.5, 0.5, 0.4, 0.35, 0.3, 0.3, 0.3])
    return Morphology(positions * um, radii * um, [-1, 0, 1, 2, 2, 3, 4, 3], [3] * 8)


def test_remeshing_a_branching_skeleton_surface_removes_the_junction_slivers():
    """Measured: smallest angle 0.02 deg (union) -> 8.7 deg (old code: 0.15 deg), volume
    within 1e-5 after the offset."""
    union = morphology_surface(_branching_neurite())
    assert min_triangle_angles(union.vertices, union.faces).min() < 0.1
    repaired, _ = repair_surface(union, merge_tolerance=0.001)
    remeshed, report = remesh_surface(repaired, max_edge=1 * um, min_edge=0.25 * um)
    angles = min_triangle_angles(remeshed.vertices, remeshed.faces)
    assert report.min_angle_after == angles.min()
    assert angles.min() > 5.0 and report.slivers_after == 0
    assert "(0 below 5 deg)" in report.summary()
    assert abs(report.volume_change) < 1e-3
    assert check_surface(remeshed).ok
    mesh = tetrahedralize(remeshed)
    assert mesh.quality.min_dihedral > 1.0


def _cap_pair(c: list[float]):
    """Top faces abc and bad over edge ab (a = 0, b = 1, c = 2, d = 3), closed below by a
    far apex e (4) whose four steep faces flip nothing."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], c, [0.5, -0.8, 0.0], [0.5, -0.2, -3.0]])
    faces = np.array([[0, 1, 2], [1, 0, 3], [2, 1, 4], [0, 2, 4], [3, 0, 4], [1, 3, 4]])
    return vertices, faces


def _has_edge(faces: np.ndarray, i: int, j: int) -> bool:
    return bool(np.any(np.isin(faces, [i, j]).sum(axis=1) == 2))


def test_the_long_edge_of_a_tilted_cap_is_flipped():
    """c 1e-3 above the middle of ab and 1e-3 out of the plane: the cap abc is tilted 45 deg
    from abd (old rule: not coplanar, refused), but the new faces adc, dbc are coplanar
    with abd to 0.1 deg, so the flip is a near no-op on the surface and removes the cap."""
    vertices, faces = _cap_pair([0.5, 1e-3, 1e-3])
    flipped, count = flip_edges(vertices, faces)
    assert count >= 1
    assert _has_edge(flipped, 2, 3) and not _has_edge(flipped, 0, 1)


def test_a_real_fold_is_not_flipped():
    """c raised to a 63 deg fold between well-shaped faces abc and abd: neither pair is
    coplanar, ab stays."""
    vertices, faces = _cap_pair([0.5, 0.3, 0.6])
    flipped, _ = flip_edges(vertices, faces)
    assert _has_edge(flipped, 0, 1)


def _fan(apex_height: float = 0.0):
    """A hexagonal fan around vertex 0 in the plane z = 0 (apex raised by apex_height),
    closed by a second apex 7 at z = -2."""
    angles = np.arange(6) * np.pi / 3
    rim = np.stack([np.cos(angles), np.sin(angles), np.zeros(6)], axis=1)
    vertices = np.vstack([[0, 0, apex_height], rim, [0, 0, -2.0]])
    top = [[0, 1 + k, 1 + (k + 1) % 6] for k in range(6)]
    bottom = [[7, 1 + (k + 1) % 6, 1 + k] for k in range(6)]
    return vertices, np.array(top + bottom)


def test_a_move_that_folds_a_face_is_undone_and_a_harmless_one_kept():
    vertices, faces = _fan()
    across = vertices.copy()
    across[0] = [1.5, 0.1, 0.0]  # the apex pushed past the rim: faces turn over
    assert folded_faces(across, faces).any()
    kept = unfolded_move(vertices, across, faces)
    np.testing.assert_array_equal(kept, vertices)
    inside = vertices.copy()
    inside[0] = [0.3, 0.1, 0.0]
    np.testing.assert_array_equal(unfolded_move(vertices, inside, faces), inside)


def test_a_pleat_makes_no_crease():
    """A flat hexagonal fan with rim vertex 1 moved across the apex's edge to vertex 2: the
    folded faces meet their neighbours at the apex at 180 deg, yet the apex is no crease
    vertex (so it is smoothed); the rim, where the fan meets the closing cone, is one."""
    flat, faces = _fan()
    assert crease_vertices(flat, faces)[1:7].all() and not crease_vertices(flat, faces)[0]
    pleated = flat.copy()
    pleated[1] = [-0.2, 0.45, 0.0]
    assert folded_faces(pleated, faces).any()
    normals = np.cross(*(pleated[faces[:6, k]] - pleated[faces[:6, 0]] for k in (1, 2)))
    assert (normals[:, 2] < 0).any() and (normals[:, 2] > 0).any()  # top faces at 180 deg
    assert not crease_vertices(pleated, faces)[0]
