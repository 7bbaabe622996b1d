"""The volume a remeshed surface lost, put back where it was lost.

The new triangles of :func:`~mf_dmri.geometry.remesh.remesh_surface` have their vertices on
the input surface, so their chords cut off the volume between them and the input: little
where the edges are short against the curvature, much across a thin neurite that gets only
four or five edges around (an inscribed pentagon has 24 % less area than its circle).  One
uniform offset restores the total but moves volume from the thin parts to the thick ones.
On a navis neuron (722817260, PGSE b <= 3000 s/mm^2) the signals of remeshes with 1 and
1.5 edges across the thickness differed by up to 6.2e-3 with that offset, 1.3e-3 with the
restoration below (``benchmarks/results/remesh_convergence.md``).

Here each face's gap to the input is measured, its mean normal distance
``g_f = sum_k w_k (c(p_k) - p_k) . n_f`` over the 7 points of the degree-3 rule on the
triangle (vertices, edge midpoints, centroid; Strang and Fix 1973), ``c`` the closest point
of the input surface on a face facing the same way (0 where the closest one faces the
other way: the opposite wall of a thin part).  Every vertex moves along its normal by the
area-weighted mean gap of its faces, and that is measured and repeated (``LOCAL_ROUNDS``);
where walls then cross (thin parts the remeshing collapsed: their gaps cannot be
measured), the vertices take the uniform move instead; what the gaps cannot see (input
parts the new surface does not reach at all) is then restored by one uniform offset, as
before.  The volume between the two surfaces,
``sum_f A_f |g_f|``, is reported before and after.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mf_dmri.geometry.intersections import self_intersections
from mf_dmri.geometry.remesh_ops import vertex_normals
from mf_dmri.geometry.surface import SurfaceMesh

#: rounds of local restoration (each measures the gaps again; on navis 722817260 the
#: volume they put back was 4.0, 1.6 and 0.7 x 1e-6 of the extent cubed in rounds 1-3:
#: about 0.4 of the round before, the rest goes to the uniform offset)
LOCAL_ROUNDS = 3
#: Newton steps of the uniform offset (dV = area x distance)
UNIFORM_STEPS = 5
#: the degree-3 rule on a triangle: barycentric points (vertices, edge midpoints, centroid)
#: and weights (sum 1), exact for cubic polynomials
RULE_POINTS = np.array(
    [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0.5, 0.5, 0],
        [0, 0.5, 0.5],
        [0.5, 0, 0.5],
        [1 / 3, 1 / 3, 1 / 3],
    ]
)
RULE_WEIGHTS = np.array([1 / 20] * 3 + [2 / 15] * 3 + [9 / 20])

#: gap(points (P, 3), normals (P, 3)) -> (P,): signed distance along each normal to the
#: input surface (positive outwards), 0 where it cannot be measured
GapFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def face_gaps(vertices: np.ndarray, faces: np.ndarray, gap: GapFunction):
    """Mean normal gap of every face to the input (F,) and the face areas (F,), in the
    units of ``vertices``."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(double_area, 1e-300)[:, None]
    points = np.einsum("kj,fjd->kfd", RULE_POINTS, tri).reshape(-1, 3)
    gaps = gap(points, np.tile(normals, (len(RULE_POINTS), 1))).reshape(len(RULE_POINTS), -1)
    return RULE_WEIGHTS @ gaps, double_area / 2


def volume_between(vertices: np.ndarray, faces: np.ndarray, gap: GapFunction) -> float:
    """The volume between the surface and the input, sum_f A_f |g_f| (units of vertices^3)."""
    gaps, areas = face_gaps(vertices, faces, gap)
    return float(areas @ np.abs(gaps))


def restore_volume(vertices: np.ndarray, faces: np.ndarray, volume: float, gap: GapFunction):
    """``vertices`` moved so that the surface encloses ``volume`` again: first each by the
    area-weighted mean gap of its faces (LOCAL_ROUNDS times); where walls then cross, the
    vertices of the crossing faces and their neighbours take the uniform move instead (see
    :func:`_uniform_where_crossing`); then all move by one distance along their normals.
    Returns the vertices, the largest local move (of the other vertices), the count of
    vertices given the uniform move and the final uniform offset."""
    start = vertices
    for _ in range(LOCAL_ROUNDS):
        gaps, areas = face_gaps(vertices, faces, gap)
        moved = np.zeros(len(vertices))
        weight = np.zeros(len(vertices))
        for corner in faces.T:
            moved += np.bincount(corner, areas * gaps, len(vertices))
            weight += np.bincount(corner, areas, len(vertices))
        move = moved / np.maximum(weight, 1e-300)
        vertices = vertices + move[:, None] * vertex_normals(vertices, faces)
    vertices, uniform = _uniform_where_crossing(start, vertices, faces, volume)
    moves = np.linalg.norm(vertices - start, axis=1)[~uniform]
    local = float(moves.max(initial=0.0))
    offset = 0.0
    for _ in range(UNIFORM_STEPS):
        vertices, step = _uniform_step(vertices, faces, volume)
        offset += step
    return vertices, local, int(uniform.sum()), offset


def _uniform_step(vertices, faces, volume):
    """Every vertex moved by one distance along its normal, the Newton step dV = area x
    distance towards ``volume``; returns them and the distance."""
    mesh = SurfaceMesh(vertices, faces)
    step = (volume - mesh.signed_volume()) / mesh.area()
    return vertices + step * vertex_normals(vertices, faces), step


def _uniform_where_crossing(start, moved, faces, volume):
    """``moved`` with the vertices of crossing faces, and of the faces around them, moved
    from ``start`` by the uniform offset that alone would restore ``volume`` instead, and
    the mask (V,) of those vertices.  Walls of thin parts that the remeshing made cross
    have gaps that cannot be measured (the closest input face is the opposite wall); the
    uniform offset pushes them apart, the local moves do not.  On navis 754538881 and
    1734350788, 86 and 58 crossing pairs remained after the local moves, 40 and 21 after
    this (47 on 754538881 with the uniform offset everywhere); re-triangulating the 86
    made sliver triangles, then zero-volume tetrahedra."""
    pairs = self_intersections(SurfaceMesh(moved, faces))
    if len(pairs) == 0:
        return moved, np.zeros(len(start), dtype=bool)
    crossing = np.zeros(len(start), dtype=bool)
    crossing[faces[pairs.ravel()].ravel()] = True
    around = np.zeros(len(start), dtype=bool)
    around[faces[crossing[faces].any(axis=1)].ravel()] = True
    uniform, _ = _uniform_step(start, faces, volume)
    return np.where(around[:, None], uniform, moved), around
