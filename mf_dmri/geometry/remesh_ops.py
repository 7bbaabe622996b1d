"""Local edge operations of isotropic surface remeshing with a per-vertex target edge
length (Botsch & Kobbelt 2004, "A remeshing approach to multiresolution modeling"):
split, collapse, flip, tangential smoothing.  Each pass applies a set of operations whose
neighbourhoods do not overlap, chosen and checked with vectorised numpy, so a pass never
breaks the manifold closed surface it is given.  Coordinates in any consistent unit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: split edges longer than this times their target, collapse those shorter than the low one
SPLIT_RATIO, COLLAPSE_RATIO = 4.0 / 3.0, 4.0 / 5.0
#: a flip or collapse must keep every changed face's normal within this cosine of the old
NORMAL_COSINE = 0.9
#: an edge whose faces' normals differ by more than arccos of this (60 deg) is a crease
CREASE_COSINE = 0.5
#: a face with a smallest angle below this [deg] is a sliver: its normal says nothing about
#: the surface (a cap's third vertex sits a rounding error off its long edge), so it
#: neither makes a crease nor blocks a flip or collapse by turning
SLIVER_ANGLE = 5.0


def edge_table(faces: np.ndarray):
    """Unique edges (k, 2) sorted, the edge of each face corner (F, 3) (corner j: edge
    from corner j to j + 1) and the two faces of each edge (k, 2) (closed manifold)."""
    directed = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=2).reshape(-1, 2))
    n = np.int64(faces.max()) + 1 if faces.size else np.int64(1)
    keys, index = np.unique(directed[:, 0] * n + directed[:, 1], return_inverse=True)
    edges = np.stack([keys // n, keys % n], axis=1)
    index = index.reshape(-1)
    face_edge = index.reshape(-1, 3)
    order = np.argsort(index, kind="stable")
    edge_faces = (order // 3).reshape(-1, 2)
    return edges, face_edge, edge_faces


def _adjacency(edges: np.ndarray, n: int) -> sp.csr_matrix:
    data = np.ones(2 * len(edges))
    return sp.csr_matrix((data, (edges.ravel(), edges[:, ::-1].ravel())), (n, n))


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    n = _face_cross(vertices, faces)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)


def _face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Twice the area vector of every face (F, 3): the area-weighted normal."""
    tri = vertices[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def sliver_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces (F,) bool whose smallest angle is below SLIVER_ANGLE."""
    tri = vertices[faces]
    smallest = np.full(len(faces), np.pi)
    for k in range(3):
        at, p, q = tri[:, k], tri[:, (k + 1) % 3], tri[:, (k + 2) % 3]
        smallest = np.minimum(smallest, _angle(at, p, q))
    return smallest < np.radians(SLIVER_ANGLE)


def _corner_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Sum of the area-weighted vertex normals of every face's corners (F, 3): the way
    the surface around the face faces, whatever the face itself does."""
    normals = vertex_normals(vertices, faces)
    return normals[faces].sum(axis=1)


def folded_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces (F,) bool turned against the surface around them (a pleat: normal against
    the sum of their corners' vertex normals)."""
    cross = _face_cross(vertices, faces)
    return np.einsum("ij,ij->i", cross, _corner_normals(vertices, faces)) < 0


def unfolded_move(old: np.ndarray, new: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The vertex positions ``new``, except that the corners of every face the move from
    ``old`` turns against the surface around it (see :func:`folded_faces`; faces already
    folded may stay so) go back to ``old``; repeated until no face is newly folded."""
    reference = _corner_normals(old, faces)
    was = np.einsum("ij,ij->i", _face_cross(old, faces), reference) < 0
    moved = new.copy()
    for _ in range(20):
        now = np.einsum("ij,ij->i", _face_cross(moved, faces), reference) < 0
        back = np.unique(faces[now & ~was])
        if len(back) == 0:
            break
        moved[back] = old[back]
    return moved


def split_long_edges(vertices, faces, sizes):
    """Split every edge longer than SPLIT_RATIO times its target at its midpoint, the
    longest edge of each face first; repeated until none is left.  Returns the arrays."""
    for _ in range(64):
        edges, face_edge, edge_faces = edge_table(faces)
        length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
        target = 0.5 * (sizes[edges[:, 0]] + sizes[edges[:, 1]])
        score = np.where(length > SPLIT_RATIO * target, length / target, -np.inf)
        pick = face_edge[np.arange(len(faces)), np.argmax(score[face_edge], axis=1)]
        chosen = np.flatnonzero(
            np.isfinite(score)
            & (pick[edge_faces[:, 0]] == np.arange(len(edges)))
            & (pick[edge_faces[:, 1]] == np.arange(len(edges)))
        )
        if len(chosen) == 0:
            return vertices, faces, sizes
        new = len(vertices) + np.arange(len(chosen))
        vertices = np.concatenate([vertices, vertices[edges[chosen]].mean(axis=1)])
        sizes = np.concatenate([sizes, sizes[edges[chosen]].mean(axis=1)])
        added = []
        faces = faces.copy()
        for side in range(2):
            f = edge_faces[chosen, side]
            k = np.argmax(face_edge[f] == chosen[:, None], axis=1)
            a, b, c = (faces[f, (k + j) % 3] for j in range(3))
            faces[f] = np.stack([a, new, c], axis=1)
            added.append(np.stack([new, b, c], axis=1))
        faces = np.concatenate([faces, *added])
    return vertices, faces, sizes


def _exclusive(candidates_vertices: list[np.ndarray], priority, n_vertices, faces):
    """Candidates (each a set of vertices per candidate) whose two-ring face neighbourhoods
    hold no candidate of smaller priority: their operations do not interact."""
    inf = np.inf
    vertex_best = np.full(n_vertices, inf)
    for verts in candidates_vertices:
        np.minimum.at(vertex_best, verts, priority)
    for _ in range(2):
        face_best = vertex_best[faces].min(axis=1)
        vertex_best = np.full(n_vertices, inf)
        for j in range(3):
            np.minimum.at(vertex_best, faces[:, j], face_best)
    ok = np.ones(len(priority), dtype=bool)
    for verts in candidates_vertices:
        ok &= vertex_best[verts] == priority
    return ok


def collapse_short_edges(vertices, faces, sizes, keep_creases: bool = True):
    """Collapse edges shorter than COLLAPSE_RATIO times their target to their midpoint,
    when the link condition holds, no new edge exceeds SPLIT_RATIO times its target, every
    vertex keeps valence >= 3 and no face normal turns; with ``keep_creases`` an
    edge with one end on a crease collapses onto that end, one joining two creases not.
    Returns the arrays and the number collapsed."""
    edges, face_edge, edge_faces = edge_table(faces)
    a, b = edges[:, 0], edges[:, 1]
    length = np.linalg.norm(vertices[a] - vertices[b], axis=1)
    target = 0.5 * (sizes[a] + sizes[b])
    short = np.flatnonzero(length < COLLAPSE_RATIO * target)
    if len(short) == 0:
        return vertices, faces, sizes, 0
    n = len(vertices)
    adjacency = sp.csr_matrix(
        (np.ones(2 * len(edges)), (edges.ravel(), edges[:, ::-1].ravel())), (n, n)
    )
    valence = np.asarray(adjacency.sum(axis=1)).ravel()
    common = np.asarray(adjacency[a[short]].multiply(adjacency[b[short]]).sum(axis=1)).ravel()
    # the merged vertex has valence va + vb - 4 and the two vertices opposite the edge
    # lose one each: all must keep >= 3 (a valence-3 vertex, the apex of a small tent
    # that no flip can remove, is collapsed like any other)
    opposite = faces[edge_faces[short]].sum(axis=2) - (a[short] + b[short])[:, None]
    keep = (common == 2) & (valence[a[short]] + valence[b[short]] - 4 >= 3)
    keep &= (valence[opposite] > 3).all(axis=1)
    short = short[keep]
    priority = length[short] / target[short] + np.arange(len(short)) * 1e-12
    short = short[_exclusive([a[short], b[short]], priority, n, faces)]
    if len(short) == 0:
        return vertices, faces, sizes, 0
    # onto the crease vertex if one end is on a crease; across two creases: not at all
    crease = crease_vertices(vertices, faces) if keep_creases else np.zeros(n, dtype=bool)
    on_a, on_b = crease[a[short]], crease[b[short]]
    normals = _face_normals(vertices, faces)
    pair = edge_faces[short]
    along = np.einsum("ij,ij->i", normals[pair[:, 0]], normals[pair[:, 1]]) < CREASE_COSINE
    short = short[~(on_a & on_b) | along]
    on_a, on_b = crease[a[short]], crease[b[short]]
    point = vertices[edges[short]].mean(axis=1)
    point[on_a & ~on_b] = vertices[a[short]][on_a & ~on_b]
    point[on_b & ~on_a] = vertices[b[short]][on_b & ~on_a]
    size = sizes[edges[short]].mean(axis=1)
    incidence = sp.csr_matrix(
        (np.ones(faces.size), (faces.ravel(), np.repeat(np.arange(len(faces)), 3))),
        (n, len(faces)),
    )
    star = (incidence[a[short]] + incidence[b[short]]).tocoo()
    cand, face = star.row, star.col
    moved = vertices[faces[face]].copy()
    corner_a = faces[face] == a[short][cand][:, None]
    corner_b = faces[face] == b[short][cand][:, None]
    both = corner_a.any(axis=1) & corner_b.any(axis=1)
    mover = corner_a | corner_b
    moved[mover] = np.repeat(point[cand], mover.sum(axis=1), axis=0)
    old_n = _face_normals(vertices, faces[face])
    new = np.cross(moved[:, 1] - moved[:, 0], moved[:, 2] - moved[:, 0])
    new_len = np.linalg.norm(new, axis=1)
    cosine = np.einsum("ij,ij->i", old_n, new) / np.maximum(new_len, 1e-300)
    bad_face = ~both & (cosine < NORMAL_COSINE)
    far = np.zeros(len(face), dtype=bool)
    for j in range(3):  # edges from the new point to the ring stay below the split length
        other = faces[face, j]
        ring = ~mover[:, j]
        dist = np.linalg.norm(vertices[other] - point[cand], axis=1)
        far |= ring & (dist > SPLIT_RATIO * 0.5 * (sizes[other] + size[cand]))
    bad = np.zeros(len(short), dtype=bool)
    np.logical_or.at(bad, cand, bad_face | (far & ~both))
    short = short[~bad]
    point, size = point[~bad], size[~bad]
    if len(short) == 0:
        return vertices, faces, sizes, 0
    vertices, sizes = vertices.copy(), sizes.copy()
    vertices[a[short]] = point
    sizes[a[short]] = size
    remap = np.arange(n)
    remap[b[short]] = a[short]
    faces = remap[faces]
    faces = faces[
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    ]
    return vertices, faces, sizes, len(short)


def _angle(at, p, q):
    u, v = p - at, q - at
    cos = np.einsum("ij,ij->i", u, v) / np.maximum(
        np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300
    )
    return np.arccos(np.clip(cos, -1.0, 1.0))


def flip_edges(vertices, faces):
    """Flip edges that are not locally Delaunay (opposite angles summing above pi) where
    the two faces are nearly coplanar (normals within NORMAL_COSINE), the new edge does not
    exist yet and neither new face turns.  Returns the faces and the number flipped."""
    edges, face_edge, edge_faces = edge_table(faces)
    f0, f1 = edge_faces[:, 0], edge_faces[:, 1]
    k0 = np.argmax(face_edge[f0] == np.arange(len(edges))[:, None], axis=1)
    k1 = np.argmax(face_edge[f1] == np.arange(len(edges))[:, None], axis=1)
    a, b, c = (faces[f0, (k0 + j) % 3] for j in range(3))
    d = faces[f1, (k1 + 2) % 3]
    va, vb, vc, vd = vertices[a], vertices[b], vertices[c], vertices[d]
    excess = _angle(vc, va, vb) + _angle(vd, va, vb) - np.pi
    n0, n1 = _face_normals(vertices, faces[f0]), _face_normals(vertices, faces[f1])
    new0 = _face_normals(vertices, np.stack([a, d, c], axis=1))
    new1 = _face_normals(vertices, np.stack([d, b, c], axis=1))
    # the four points are nearly coplanar when either pair of faces is; a sliver's own
    # normal is noise, so the new faces are compared with the area-weighted normal
    mean = _face_cross(vertices, faces[f0]) + _face_cross(vertices, faces[f1])
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-300)
    up0, up1 = np.einsum("ij,ij->i", new0, mean), np.einsum("ij,ij->i", new1, mean)
    flat = (np.einsum("ij,ij->i", n0, n1) > NORMAL_COSINE) | (
        (np.einsum("ij,ij->i", new0, new1) > NORMAL_COSINE)
        & (up0 > NORMAL_COSINE)
        & (up1 > NORMAL_COSINE)
    )
    upright = (up0 > 0) & (up1 > 0)
    candidate = np.flatnonzero((excess > 1e-9) & flat & upright & (c != d))
    if len(candidate) == 0:
        return faces, 0
    n = np.int64(len(vertices))
    pair = np.sort(np.stack([c[candidate], d[candidate]], axis=1), axis=1)
    fresh = ~np.isin(pair[:, 0] * n + pair[:, 1], edges[:, 0] * n + edges[:, 1])
    candidate = candidate[fresh]
    # a flip rewrites its two faces only: flips sharing no face are independent
    priority = -excess[candidate] + np.arange(len(candidate)) * 1e-12
    face_best = np.full(len(faces), np.inf)
    np.minimum.at(face_best, f0[candidate], priority)
    np.minimum.at(face_best, f1[candidate], priority)
    alone = (face_best[f0[candidate]] == priority) & (face_best[f1[candidate]] == priority)
    candidate = candidate[alone]
    if len(candidate) == 0:
        return faces, 0
    pair = np.sort(np.stack([c[candidate], d[candidate]], axis=1), axis=1)
    _, first = np.unique(pair[:, 0] * n + pair[:, 1], return_index=True)  # one edge twice
    candidate = candidate[np.sort(first)]
    faces = faces.copy()
    e = candidate
    faces[f0[e]] = np.stack([a[e], d[e], c[e]], axis=1)
    faces[f1[e]] = np.stack([d[e], b[e], c[e]], axis=1)
    return faces, len(candidate)


def vertex_normals(vertices, faces):
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for j in range(3):
        np.add.at(normals, faces[:, j], n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)


def crease_vertices(vertices, faces, cosine: float = CREASE_COSINE) -> np.ndarray:
    """Vertices (V,) bool on an edge whose two faces' normals differ by more than
    arccos(``cosine``) (60 deg): the creases of a coarse polyhedral input."""
    edges, _, edge_faces = edge_table(faces)
    normals = _face_normals(vertices, faces)
    sharp = np.einsum("ij,ij->i", normals[edge_faces[:, 0]], normals[edge_faces[:, 1]]) < cosine
    unreliable = sliver_faces(vertices, faces) | folded_faces(vertices, faces)
    sharp &= ~unreliable[edge_faces].any(axis=1)
    crease = np.zeros(len(vertices), dtype=bool)
    crease[edges[sharp].ravel()] = True
    return crease


def tangential_smoothing(vertices, faces, weight: float = 0.5):
    """Move every vertex off a crease a fraction ``weight`` towards the mean of its
    neighbours, within its tangent plane (the surface shape is kept to first order; the
    creases stay where they are, so the chords do not cut them off round by round: without
    this rule 8 rounds lost 10 % of the volume of a navis cell)."""
    edges, _, _ = edge_table(faces)
    n = len(vertices)
    adjacency = _adjacency(edges, n)
    count = np.asarray(adjacency.sum(axis=1))
    step = adjacency @ vertices / count - vertices
    normals = vertex_normals(vertices, faces)
    step -= np.einsum("ij,ij->i", step, normals)[:, None] * normals
    step[crease_vertices(vertices, faces)] = 0.0
    return vertices + weight * step
