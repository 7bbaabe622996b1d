"""Local re-triangulation of defective parts of a surface.

The faces at a defect (crossing another face, at a non-manifold edge or vertex, of zero
area) are removed together with ``ring`` rings of neighbouring faces, and each hole left
is closed again (:mod:`mf_dmri.geometry.hole_filling`; a hole bounded by two loops, such
as a band cut out of a neurite, is closed by a tube strip so the neurite stays in one
piece).  The new patches are checked like the rest of the surface; where a defect remains
the ring grows by one and the step repeats.  Only the neighbourhood of each defect moves,
so thin parts elsewhere are kept exactly and the volume changes only locally.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from mf_dmri.geometry.checks import DEGENERATE_RELATIVE_HEIGHT
from mf_dmri.geometry.hole_filling import boundary_loops, fill_hole, refine_patch
from mf_dmri.geometry.intersections import self_intersections
from mf_dmri.geometry.repair_steps import (
    compact,
    incident_edge_lengths,
    nonmanifold_faces,
)
from mf_dmri.geometry.strip import strip_between
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.topology import edge_table, face_components

logger = logging.getLogger(__name__)

#: passes through the ring sizes 0..max_rings before a defect is given up
PASSES = 5
#: ring widths (in faces) of the passes of a last stage, for defects the usual passes
#: left: a defect spread over many small faces (a finely tessellated surface) is cut out
#: in rings of its own size
WIDER_RINGS = (2, 2, 4, 4, 8, 8)
#: kept pieces of at most this many faces enclosed by a removed region are removed too
ISLAND_FACES = 6


@dataclass(frozen=True)
class Defects:
    """Boolean masks (F,) of the faces at each kind of defect, and every pair of crossing
    faces (K, 2), whichever their bodies (kept to update the masks after a local change)."""

    intersecting: np.ndarray
    nonmanifold: np.ndarray
    degenerate: np.ndarray
    pairs: np.ndarray

    @property
    def any(self) -> np.ndarray:
        return self.intersecting | self.nonmanifold | self.degenerate


def find_defects(
    vertices: np.ndarray,
    faces: np.ndarray,
    between_bodies: bool = False,
    previous: tuple[Defects, np.ndarray] | None = None,
) -> Defects:
    """Faces that cross another face of their own body (of any body with
    ``between_bodies``), sit at a non-manifold edge or vertex, or have zero area (height
    below 1e-9 of their longest edge).  Crossings between different bodies are otherwise
    left to the union of bodies.  previous: (defects, origin) of the surface before a
    local change, ``origin`` (F,) the earlier index of each face (-1 for a new face); only
    pairs with a new face are then tested for crossings (the others are unchanged)."""
    mesh = SurfaceMesh(vertices, faces)
    if previous is None:
        pairs = self_intersections(mesh)
    else:
        pairs = np.concatenate([_kept_pairs(*previous), self_intersections(mesh, previous[1] < 0)])
    crossing = np.zeros(len(faces), dtype=bool)
    own = pairs
    if not between_bodies:
        body = face_components(faces, len(vertices))
        own = pairs[body[pairs[:, 0]] == body[pairs[:, 1]]]
    crossing[own.reshape(-1)] = True
    tri = mesh.triangles()
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    height = 2 * mesh.face_areas() / np.where(longest > 0, longest, 1.0)
    degenerate = height <= DEGENERATE_RELATIVE_HEIGHT * longest
    return Defects(crossing, nonmanifold_faces(faces), degenerate, pairs)


def _kept_pairs(defects: Defects, origin: np.ndarray) -> np.ndarray:
    """The crossing pairs of ``defects`` whose faces both survive, in the new numbering
    (``origin`` (F,): earlier index of each face, -1 for new faces)."""
    now = np.full(len(defects.intersecting), -1)
    kept = np.nonzero(origin >= 0)[0]
    now[origin[kept]] = kept
    pairs = now[defects.pairs] if len(defects.pairs) else defects.pairs
    return pairs[(pairs >= 0).all(axis=1)]


def _face_adjacency(faces: np.ndarray) -> sparse.csr_matrix:
    """Faces sharing an edge, as a sparse (F, F) matrix."""
    _, inverse, counts = edge_table(faces)
    rows = np.repeat(np.arange(len(faces)), 3)
    incidence = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, inverse)), shape=(len(faces), len(counts))
    )
    return (incidence @ incidence.T).tocsr()


def grow(faces: np.ndarray, index: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """Mask (F,) of the faces ``index`` (K,) grown by ``rings`` (K,) rings of faces
    sharing an edge (each face its own count), then closed over islands: kept pieces that
    would be left enclosed by the selection."""
    adjacency = _face_adjacency(faces)
    mask = np.zeros(len(faces), dtype=bool)
    for ring in np.unique(rings):
        grown = np.zeros(len(faces))
        grown[index[rings == ring]] = 1.0
        for _ in range(int(ring)):
            grown = (adjacency @ grown > 0).astype(float)
        mask |= grown > 0
    return _absorb_islands(faces, mask, adjacency)


def _absorb_islands(faces: np.ndarray, mask: np.ndarray, adjacency) -> np.ndarray:
    """Add to ``mask`` every kept piece (faces connected through edges) of at most
    :data:`ISLAND_FACES` faces that is not the rest of its body: islands that would be left
    inside a removed region (larger pieces, such as a neurite tip beyond a removed band,
    stay and are joined back by a strip)."""
    keep = np.nonzero(~mask)[0]
    if len(keep) == 0 or not mask.any():
        return mask
    sub = adjacency[keep][:, keep]
    n_pieces, piece = connected_components(sub, directed=False)
    sizes = np.bincount(piece, minlength=n_pieces)
    largest = sizes.max()
    small = np.nonzero((sizes < largest) & (sizes <= ISLAND_FACES))[0]
    mask = mask.copy()
    if len(small):
        body = face_components(faces, int(faces.max()) + 1)
        # a piece is an island when every face of its body outside it is selected
        for index in small:
            members = keep[piece == index]
            others = (body == body[members[0]]) & ~np.isin(np.arange(len(faces)), members)
            if np.all(mask[others]):
                continue  # the whole rest of this body: not an island but a body
            mask[members] = True
    return mask


@dataclass(frozen=True)
class Patch:
    """One re-triangulated region: centre (3,) [m], faces removed and added, and the
    volume change [m^3] it caused."""

    centre: np.ndarray
    faces_removed: int
    faces_added: int
    volume_change: float


def _regions(faces: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Component label (F,) of the masked faces (connected through vertices), -1 else."""
    index = np.nonzero(mask)[0]
    labels = np.full(len(faces), -1)
    if len(index) == 0:
        return labels
    sub = faces[index]
    incidence = sparse.csr_matrix(
        (np.ones(sub.size), (np.repeat(np.arange(len(sub)), 3), sub.reshape(-1)))
    )
    _, component = connected_components(incidence @ incidence.T, directed=False)
    labels[index] = component
    return labels


def _euler_characteristic(faces: np.ndarray) -> int:
    """V - E + F of a set of faces."""
    if len(faces) == 0:
        return 0
    edges, _, _ = edge_table(faces)
    return len(np.unique(faces)) - len(edges) + len(faces)


def _close(vertices, loops, scale, neighbours, removed, pieces, allow_cut):
    """New vertices and faces closing the hole bounded by ``loops`` with a patch of the
    topology of the ``removed`` faces (one piece joining all loops when they bounded one
    connected piece, else a cap per loop), or None.  ``pieces``: (body, kept piece) of
    each loop; when one body's loops lie on different kept pieces, caps would cut that
    body in two (a neurite off its cell), so only a patch joining all loops is tried
    unless ``allow_cut`` (the last resort, after every ring size failed)."""
    separate = _cut_apart(pieces)
    joined = len(loops) > 1 and _euler_characteristic(removed) <= 2 - len(loops)
    if separate and not allow_cut:
        attempts = ["joined"]
    else:
        attempts = ["joined", "caps"] if joined else ["caps", "joined"]
    for attempt in attempts if len(loops) > 1 else ["joined"]:
        if attempt == "caps":
            closed = _caps(vertices, loops, scale, neighbours)
        elif len(loops) == 2 and not set(loops[0]) & set(loops[1]):
            closed = _strip(vertices, loops, scale, neighbours)
            if closed is None:
                closed = fill_hole(vertices, loops, scale, neighbours)
        else:
            closed = fill_hole(vertices, loops, scale, neighbours)
        if closed is not None and _valid_patch(closed[1], loops, neighbours):
            return closed
    return None


def _strip(vertices, loops, scale, neighbours):
    """A refined tube strip joining two disjoint loops, or None."""
    faces = strip_between(vertices, loops[0], loops[1])
    if not _valid_patch(faces, loops, neighbours):
        return None
    closed = refine_patch(vertices, faces, scale, neighbours)
    return closed if _valid_patch(closed[1], loops, neighbours) else None


def _caps(vertices, loops, scale, neighbours):
    """One patch per loop, or None when one fails."""
    points, faces, total = [], [], len(vertices)
    for loop in loops:
        closed = fill_hole(np.concatenate([vertices, *points]), [loop], scale, neighbours)
        if closed is None:
            return None
        points.append(closed[0])
        faces.append(closed[1])
        total += len(closed[0])
        scale = np.concatenate([scale, np.full(len(closed[0]), np.median(scale))])
    return np.concatenate(points), np.concatenate(faces)


def _valid_patch(faces: np.ndarray, loops: list[list[int]], neighbours) -> bool:
    """Whether the patch runs every loop edge backwards exactly once and adds no edge that
    exists already."""
    directed = {(int(a), int(b)) for f in faces for a, b in zip(f, np.roll(f, -1))}
    loop_edges = {(a, b) for loop in loops for a, b in zip(loop, loop[1:] + loop[:1])}
    if len(directed) != 3 * len(faces) or loop_edges & directed:
        return False
    if not all((b, a) in directed for a, b in loop_edges):
        return False
    inner = {tuple(sorted(e)) for e in directed} - {tuple(sorted(e)) for e in loop_edges}
    return not any(b in neighbours.get(a, ()) for a, b in inner)


def open_faces(faces: np.ndarray) -> np.ndarray:
    """Faces with a boundary edge (F,) bool."""
    _, inverse, counts = edge_table(faces)
    return (counts[inverse] == 1).reshape(-1, 3).any(axis=1)


class EdgeNeighbours:
    """The vertices joined to each vertex by an edge of a face set, read like a dict of
    sets (``get(vertex, default)``); stored as one sparse row per vertex, the set of a
    vertex made when it is asked for (a repair asks for a few vertices of a large mesh)."""

    def __init__(self, faces: np.ndarray) -> None:
        edges, _, _ = edge_table(faces)
        ends = np.concatenate([edges, edges[:, ::-1]])
        n = int(faces.max()) + 1 if len(faces) else 0
        order = np.argsort(ends[:, 0], kind="stable")
        self._others = ends[order, 1]
        self._starts = np.searchsorted(ends[order, 0], np.arange(n + 1))

    def __len__(self) -> int:
        return len(self._others) // 2

    def get(self, vertex: int, default=()) -> frozenset[int] | tuple:
        if not 0 <= vertex < len(self._starts) - 1:
            return default
        start, stop = self._starts[vertex], self._starts[vertex + 1]
        return frozenset(self._others[start:stop].tolist()) if stop > start else default


def edge_neighbours(faces: np.ndarray) -> EdgeNeighbours:
    """The vertices joined to each vertex by an edge of ``faces``."""
    return EdgeNeighbours(faces)


def _vertex_pieces(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Piece (connected through vertices) of every vertex of ``faces`` (V,), -1 unused."""
    piece = np.full(n_vertices, -1)
    if len(faces):
        piece[faces.reshape(-1)] = np.repeat(face_components(faces, n_vertices), 3)
    return piece


def _cut_apart(pieces: list[tuple[int, int]]) -> bool:
    """Whether loops on these (body, kept piece) lie on different pieces of one body that
    was whole before the faces between them were removed (capping them would cut it)."""
    found: dict[int, set[int]] = {}
    for body, piece in pieces:
        found.setdefault(body, set()).add(piece)
    return any(len(kept) > 1 for kept in found.values())


def retriangulate(
    vertices: np.ndarray, faces: np.ndarray, remove: np.ndarray, allow_cut: bool = False
) -> tuple[np.ndarray, np.ndarray, list[Patch], np.ndarray]:
    """Remove the faces in ``remove`` (F,) and close every hole then open (pre-existing
    holes included).  A region whose hole cannot be closed keeps its faces; a region
    whose removal cut a body apart is closed by caps only when ``allow_cut``.  Returns
    (vertices, faces, patches, origin): ``origin`` the index in ``faces`` of each face
    kept, -1 for a new one."""
    scale = incident_edge_lengths(vertices, faces)
    scale = np.where(np.isfinite(scale), scale, np.nanmedian(scale[np.isfinite(scale)]))
    labels = _regions(faces, remove)
    rest = faces[~remove]
    loops, _ = boundary_loops(rest)
    owner = np.full(len(vertices), -1)
    owner[faces[remove].reshape(-1)] = np.repeat(labels[remove], 3)
    groups: dict[tuple, list[list[int]]] = {("region", r): [] for r in range(labels.max() + 1)}
    for number, loop in enumerate(loops):
        region = owner[loop]
        key = ("region", int(region.max())) if region.max() >= 0 else ("hole", number)
        groups.setdefault(key, []).append(loop)
    neighbours = edge_neighbours(rest) if len(rest) else {}
    piece = _vertex_pieces(rest, len(vertices))
    body = _vertex_pieces(faces, len(vertices))
    points, new_faces, patches = [vertices], [rest], []
    source = [np.nonzero(~remove)[0]]
    total = len(vertices)
    origin = vertices.mean(axis=0)
    for key, group in groups.items():
        removed = faces[labels == key[1]] if key[0] == "region" else np.zeros((0, 3), int)
        sizes = np.concatenate([scale, np.full(total - len(vertices), np.median(scale))])
        closed = (
            _close(
                np.concatenate(points),
                group,
                sizes,
                neighbours,
                removed,
                [(int(body[loop[0]]), int(piece[loop[0]])) for loop in group],
                allow_cut,
            )
            if group
            else None
        )
        if closed is None:
            new_faces.append(removed)  # left as it was, for a larger region next round
            source.append(np.nonzero(labels == key[1])[0] if key[0] == "region" else [])
            continue
        added_points, added_faces = closed
        points.append(added_points)
        total += len(added_points)
        new_faces.append(added_faces)
        source.append(np.full(len(added_faces), -1))
        all_points = np.concatenate(points)
        change = signed_volume_about(all_points, added_faces, origin) - signed_volume_about(
            vertices, removed, origin
        )
        centre = vertices[np.concatenate(group)].mean(axis=0)
        patches.append(Patch(centre, len(removed), len(added_faces), change))
    vertices, faces = compact(np.concatenate(points), np.concatenate(new_faces))
    return vertices, faces, patches, np.concatenate(source).astype(np.int64)


def signed_volume_about(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray) -> float:
    """Sum of the signed tetrahedra (origin, face) [m^3]."""
    if len(faces) == 0:
        return 0.0
    tri = vertices[faces] - origin
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)


def _escalated_rings(
    centres: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None,
    reach: np.ndarray,
    max_rings: int,
) -> np.ndarray:
    """Step of each defect face (centres (K, 3) [m]): one more than the step of the
    nearest defect of the previous round within ``reach`` (K,) [m] (the same defect, not
    resolved by that ring), else 0 (a new defect, e.g. made by a neighbouring patch,
    starts small); past ``max_rings`` it starts again from 0 on the changed surface."""
    steps = np.zeros(len(centres), dtype=np.int64)
    if previous is None or len(previous[0]) == 0 or len(centres) == 0:
        return steps
    distance, nearest = cKDTree(previous[0]).query(centres)
    near = distance <= reach
    steps[near] = previous[1][nearest[near]] + 1
    return steps % (max_rings + 1)


def repair_defects(
    vertices: np.ndarray,
    faces: np.ndarray,
    max_rings: int = 2,
    between_bodies: bool = False,
    ring_widths: tuple[int, ...] = (1,) * PASSES,
) -> tuple[np.ndarray, np.ndarray, list[Patch], Defects]:
    """Re-triangulate around every defect; a defect still there after a round is cut out
    again with one more ring (per defect, so that a defect made by a neighbouring patch
    starts again from its own faces), up to ``max_rings``, then from 0 again: one pass
    per entry of ``ring_widths``, the width of its rings in faces (:data:`WIDER_RINGS`
    for a last stage).  Caps that cut a body apart are allowed in the last pass only.
    Returns (vertices, faces, patches, defects left).  ``between_bodies``: as in
    :func:`find_defects`."""
    patches: list[Patch] = []
    defects = find_defects(vertices, faces, between_bodies)
    previous = None
    widths = list(ring_widths)
    rounds = len(widths) * (max_rings + 1)
    for number in range(rounds):
        mask = defects.any | open_faces(faces)
        if not mask.any():
            break
        index = np.nonzero(mask)[0]
        centres = vertices[faces[index]].mean(axis=1)
        reach = incident_edge_lengths(vertices, faces, "max")[faces[index]].max(axis=1)
        steps = _escalated_rings(centres, previous, reach, max_rings)
        rings = steps * widths[number // (max_rings + 1)]
        remove = grow(faces, index, rings)
        previous = (centres, steps)
        # caps that cut a body only in the last pass of ring sizes (last resort)
        last = number >= rounds - (max_rings + 1)
        vertices, faces, new, origin = retriangulate(vertices, faces, remove, last)
        logger.debug(
            "round: %d defect faces (rings %s), %d removed, %d patches",
            len(index),
            np.bincount(rings).tolist(),
            int(remove.sum()),
            len(new),
        )
        patches += new
        defects = find_defects(vertices, faces, between_bodies, (defects, origin))
    return vertices, faces, patches, defects
