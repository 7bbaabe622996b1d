"""Volume restoration of the re-triangulated patches of the local repair.

The local repair (:mod:`mf_dmri.geometry.repair_local`) closes each cut-out region with a
minimum-area patch, refined to the loop's edge length and smoothed.  Where the region
went around a thin neurite (0.2-1 um thick on a mesh with ~1 um edges), that patch is a
flattened or necked tube: its volume is well below that of the faces it replaced (on
the navis meshes -0.9 to -3.6 % of the cell, nearly all in regions around neurites
0.5-1 um thick).  This step compares the surface after the local repair with the one
before: every connected group of new faces P and the old faces D it replaced (joined
through shared vertices) forms a closed chain, so vol(D) - vol(P) is the volume the
patch lost.  P is refined without smoothing (new vertices on its faces, at
:data:`REFINE` of the local edge length) and its interior vertices are moved in two
stages, each x + t d(x) with t solving vol(P(t)) = vol(D) (a cubic in t: each face's
tetrahedron volume is trilinear in its corners), |t| <= :data:`MAX_OFFSET`:

1. towards the replaced faces: d = the patch normal (outward where volume is missing,
   inward where there is too much) times the distance along it to the first face of D
   it meets (where it meets none: the bump below times the median of those distances);
2. what the first stage left: d = the normal times a bump phi x r (phi: graph distance
   from the loop, 1 at the deepest vertex; r: the loop's median radius).

Where a moved patch would cross a face near it, the offsets of the vertices of the
crossing faces are halved and t solved again, up to :data:`BACKOFFS` times, then the
whole move is halved until it crosses nothing (up to :data:`HALVINGS` times, else that
stage is not made); so the surface stays closed, manifold and free of crossings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from mf_dmri.geometry.hole_filling import refine_patch
from mf_dmri.geometry.intersections import self_intersections
from mf_dmri.geometry.remesh_ops import vertex_normals
from mf_dmri.geometry.repair_local import edge_neighbours, signed_volume_about
from mf_dmri.geometry.repair_steps import incident_edge_lengths
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.thickness import ray_triangle_parameters
from mf_dmri.geometry.topology import edge_table

#: target edge length of the refined patch, as a fraction of the local edge length [1]
REFINE = 0.4
#: largest factor t of a stage's move [1]
MAX_OFFSET = 5.0
#: times the vertices of crossing faces are held back (their offset halved) before the
#: whole move is halved, up to HALVINGS times, until it crosses nothing
BACKOFFS = 8
HALVINGS = 6


@dataclass(frozen=True)
class Restored:
    """One patch moved: centre (3,) [m], faces before and after refinement, and the
    volume change [m^3] the move caused (refinement alone changes nothing measurable)."""

    centre: np.ndarray
    faces_before: int
    faces_after: int
    volume_change: float


def _face_keys(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A key per face from its corner coordinates, independent of vertex numbering and of
    the corner order (F,) (bytes)."""
    corners = vertices[faces]  # (F, 3, 3)
    order = np.lexsort(corners.transpose(2, 0, 1)[::-1], axis=-1)
    ordered = np.take_along_axis(corners, order[:, :, None], axis=1)
    flat = np.ascontiguousarray(ordered.reshape(len(faces), 9))
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * 9))).reshape(-1)


def _vertex_ids(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Shared numbering: vertices of ``after`` at the exact position of one of ``before``
    get its index, the others new indices after len(before) (len(after),)."""
    both = np.ascontiguousarray(np.vstack([before, after]))
    keys = both.view(np.dtype((np.void, both.dtype.itemsize * 3))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    ids = first[inverse.reshape(-1)][len(before) :]
    fresh = ids >= len(before)
    ids[fresh] = len(before) + np.arange(fresh.sum())
    return ids


def changed_groups(
    before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (faces of ``before`` removed, faces of ``after`` added) (index arrays) that
    replaced each other: connected through shared vertices (same position)."""
    (v0, f0), (v1, f1) = before, after
    keys0, keys1 = _face_keys(v0, f0), _face_keys(v1, f1)
    removed = np.nonzero(~np.isin(keys0, keys1))[0]
    added = np.nonzero(~np.isin(keys1, keys0))[0]
    if len(added) == 0:
        return []
    ids = _vertex_ids(v0, v1)
    chain = np.vstack([f0[removed], ids[f1[added]]])
    n = len(v0) + len(v1)
    incidence = sparse.csr_matrix(
        (np.ones(chain.size), (np.repeat(np.arange(len(chain)), 3), chain.reshape(-1))),
        shape=(len(chain), n),
    )
    _, label = connected_components(incidence @ incidence.T, directed=False)
    first, second = label[: len(removed)], label[len(removed) :]
    return [(removed[first == g], added[second == g]) for g in np.unique(second)]


def _depth(faces: np.ndarray, fixed: np.ndarray, n_points: int) -> np.ndarray:
    """Edges from each vertex of ``faces`` to the nearest ``fixed`` vertex (n_points,)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    depth = np.full(n_points, np.inf)
    depth[fixed] = 0
    for step in range(1, n_points + 1):
        reached = np.isfinite(depth[edges[:, 0]]) & ~np.isfinite(depth[edges[:, 1]])
        if not reached.any():
            break
        depth[edges[reached, 1]] = step
    return depth


def _offset(volume) -> float:
    """The t of smallest |t| <= MAX_OFFSET with volume(t) = 0 (a cubic); if there is
    none, the t in that range where |volume| is smallest."""
    samples = np.array([-1.0, 0.0, 1.0, 2.0])
    coefficients = np.polyfit(samples, [volume(s) for s in samples], 3)
    roots = np.roots(coefficients)
    real = roots[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots))].real
    real = real[np.abs(real) <= MAX_OFFSET]
    if len(real):
        return float(real[np.argmin(np.abs(real))])
    grid = np.linspace(-MAX_OFFSET, MAX_OFFSET, 201)
    return float(grid[np.argmin(np.abs(np.polyval(coefficients, grid)))])


class _Rest(NamedTuple):
    """The faces (F, 3) that stay while a patch moves, with their boxes' corners (F, 3)
    [m] (their vertices never move: computed once)."""

    faces: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _crossing(points: np.ndarray, patch: np.ndarray, others: _Rest) -> np.ndarray:
    """Faces of ``patch`` (indices) that cross another patch face or a face of ``others``
    near it."""
    tri = points[patch]
    low, high = tri.min(axis=(0, 1)), tri.max(axis=(0, 1))
    pad = 0.1 * float((high - low).max())
    near = np.all((others.high >= low - pad) & (others.low <= high + pad), axis=1)
    local = np.concatenate([patch, others.faces[near]])
    used, inverse = np.unique(local, return_inverse=True)
    pairs = self_intersections(SurfaceMesh(points[used], inverse.reshape(-1, 3)))
    return np.unique(pairs[pairs < len(patch)])


def _restore_one(points, rest, patch, removed_points, removed, scale):
    """The patch faces ``patch`` (the surface: ``rest`` and ``patch``) refined and moved to
    the volume of ``removed`` (faces of ``removed_points``): (points, refined patch
    faces, volume change [m^3]), or None when no move is valid."""
    loop = np.unique(patch)
    origin = points[loop].mean(axis=0)
    target = signed_volume_about(removed_points, removed, origin)
    touching = rest.faces[np.isin(rest.faces, loop).any(axis=1)]  # existing edges there
    new_points, refined = refine_patch(
        points, patch, scale * REFINE, edge_neighbours(touching), smooth=False
    )
    grown = np.vstack([points, new_points])
    if len(new_points) == 0 or len(_crossing(grown, refined, rest)):
        return None
    depth = _depth(refined, _boundary_vertices(refined), len(grown))
    moving = np.nonzero(np.isfinite(depth) & (depth > 0))[0]
    moving = moving[~np.isin(moving, rest.faces)]  # a vertex the rest uses too stays
    if len(moving) == 0:
        return None
    start = signed_volume_about(points, patch, origin)
    sign = 1.0 if target > start else -1.0
    normals = vertex_normals(grown, refined) * sign
    reach = _ray_hits(grown[moving], normals[moving], removed_points[removed])
    bump = np.zeros(len(grown))
    bump[moving] = depth[moving] / depth[moving].max()
    hit = np.isfinite(reach)
    typical = float(np.median(reach[hit])) if hit.any() else 0.0
    # first towards the replaced faces (along the normal to where it meets them), then
    # what is left by a bump along the normal
    toward = np.zeros(len(grown))
    toward[moving] = np.where(hit, reach, bump[moving] * typical)
    moved = _solve_move(grown, normals * toward[:, None], refined, rest, origin, target)
    moved = grown if moved is None else moved
    size = float(np.median(np.linalg.norm(points[loop] - origin, axis=1)))
    along = vertex_normals(moved, refined) * (bump * size)[:, None]
    again = _solve_move(moved, along, refined, rest, origin, target)
    moved = moved if again is None else again
    if moved is grown:
        return None
    return moved, refined, signed_volume_about(moved, refined, origin) - start


def _solve_move(grown, direction, refined, rest, origin, target):
    """``grown`` moved by t x direction with the volume of ``refined`` at ``target``
    (|t| <= MAX_OFFSET), held back where it crosses (module docstring), or None."""
    if not np.any(direction):
        return None
    weight = np.ones(len(grown))
    for _ in range(BACKOFFS):
        t = _offset(_volume_error(grown, direction * weight[:, None], refined, origin, target))
        moved = grown + t * direction * weight[:, None]
        crossing = _crossing(moved, refined, rest)
        if len(crossing) == 0:
            return moved
        weight[np.unique(refined[crossing])] *= 0.5  # hold back where it crosses
    for fraction in 0.5 ** np.arange(1, HALVINGS + 1):
        moved = grown + fraction * t * direction * weight[:, None]
        if len(_crossing(moved, refined, rest)) == 0:
            return moved
    return None


def _ray_hits(origins: np.ndarray, directions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Distance (K,) [m] along each ray (unit ``directions``) to the nearest of the
    ``triangles`` (T, 3, 3) it hits ahead of its origin, inf if none."""
    count, size = len(origins), len(triangles)
    t = ray_triangle_parameters(
        np.repeat(origins, size, axis=0),
        np.repeat(directions, size, axis=0),
        np.tile(triangles, (count, 1, 1)),
    ).reshape(count, size)
    return np.where(t > 0, t, np.inf).min(axis=1, initial=np.inf)


def _volume_error(grown, direction, refined, origin, target):
    """Volume of the patch moved by t x direction minus the target, a function of t."""
    return lambda t: signed_volume_about(grown + t * direction, refined, origin) - target


def _boundary_vertices(faces: np.ndarray) -> np.ndarray:
    """Vertices on the boundary edges of the patch ``faces``."""
    edges, inverse, counts = edge_table(faces)
    return np.unique(edges[counts == 1])


def restore_volume(
    before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[Restored]]:
    """Move the patches by which ``after`` (vertices [m], faces) replaced faces of
    ``before`` so that each encloses the volume of the faces it replaced (module
    docstring).  Returns (vertices, faces, patches moved)."""
    points, faces = after
    scale = incident_edge_lengths(points, faces)
    scale = np.where(np.isfinite(scale), scale, np.median(scale[np.isfinite(scale)]))
    alive = np.ones(len(faces), dtype=bool)
    restored: list[Restored] = []
    tri = points[faces]
    low, high = tri.min(axis=1), tri.max(axis=1)
    for removed, added in changed_groups(before, after):
        if len(removed) == 0:
            continue
        alive[added] = False
        current = np.nonzero(alive)[0]
        rest = _Rest(faces[current], low[current], high[current])
        result = _restore_one(points, rest, faces[added], before[0], before[1][removed], scale)
        if result is None:
            alive[added] = True
            continue
        points, refined, change = result
        faces = np.vstack([faces, refined])
        low = np.vstack([low, points[refined].min(axis=1)])
        high = np.vstack([high, points[refined].max(axis=1)])
        alive = np.concatenate([alive, np.ones(len(refined), dtype=bool)])
        scale = np.concatenate([scale, np.full(len(points) - len(scale), np.median(scale))])
        centre = points[refined].reshape(-1, 3).mean(axis=0)
        restored.append(Restored(centre, len(added), len(refined), change))
    return points, faces[alive], restored
