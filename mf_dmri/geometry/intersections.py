"""Triangle-triangle intersection tests accelerated by an R-tree of face bounding boxes.

Two faces intersect when they share a point that is not a common vertex or a common edge:
a transversal crossing, a coplanar overlap, or a fold (two faces sharing an edge and lying
on the same side of it in one plane).  Touching only at shared corners is not an
intersection.  The tests are vectorised over candidate pairs; the R-tree (``rtree``,
MIT licence) keeps the candidates to pairs with overlapping bounding boxes.
"""

from __future__ import annotations

import numpy as np
from rtree import index

from mf_dmri.geometry.surface import SurfaceMesh

#: relative tolerance (of the bounding-box diagonal) for "on the plane" decisions
RELATIVE_TOLERANCE = 1e-10
_CHUNK = 200_000


def candidate_pairs(
    boxes_a: np.ndarray, boxes_b: np.ndarray | None = None, *, padding: float = 0.0
) -> np.ndarray:
    """Pairs (i, j) whose axis-aligned boxes (n, 2, 3) [m] overlap.

    With one box array the pairs are within it and satisfy i < j; with two arrays i indexes
    ``boxes_a`` and j indexes ``boxes_b``.
    """
    tree_boxes = boxes_a if boxes_b is None else boxes_b
    tree = box_tree(tree_boxes[:, 0] - padding, tree_boxes[:, 1] + padding)
    pairs = np.stack(overlapping_boxes(tree, boxes_a[:, 0], boxes_a[:, 1]), axis=1)
    if boxes_b is None:
        pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    return pairs


def box_tree(lower: np.ndarray, upper: np.ndarray) -> index.Index:
    """R-tree of the axis-aligned boxes with corners ``lower`` and ``upper`` (n, 3) [m];
    box ids 0..n-1."""
    ids = np.arange(len(lower), dtype=np.int64)
    return index.Index((ids, lower, upper), properties=index.Property(dimension=3))


def overlapping_boxes(
    tree: index.Index, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, tree box) pair of overlapping boxes: the query boxes' indices and the
    tree's box ids (both (P,) int64), the queries given by corners (q, 3) [m]."""
    hits, counts = tree.intersection_v(np.ascontiguousarray(lower), np.ascontiguousarray(upper))
    query = np.repeat(np.arange(len(lower), dtype=np.int64), counts.astype(np.int64))
    return query, hits.astype(np.int64)


def _signed_distances(tri: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed distances of points (P, k, 3) to the planes of triangles (P, 3, 3)."""
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = normal / np.where(length > 0, length, 1.0)
    return np.einsum("pkj,pj->pk", points - tri[:, :1], normal)


def _barycentric_interior(tri: np.ndarray, points: np.ndarray, margin: float) -> np.ndarray:
    """Whether points (P, 3) on the triangles' planes have all barycentric coordinates above
    ``margin`` (positive: strictly inside; negative: inside or on the boundary)."""
    e0, e1 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    rel = points - tri[:, 0]
    d00 = np.einsum("pj,pj->p", e0, e0)
    d01 = np.einsum("pj,pj->p", e0, e1)
    d11 = np.einsum("pj,pj->p", e1, e1)
    d20 = np.einsum("pj,pj->p", rel, e0)
    d21 = np.einsum("pj,pj->p", rel, e1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(denom != 0, denom, np.inf)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return (v > margin) & (w > margin) & (1 - v - w > margin)


def _edges_cross(tri_a: np.ndarray, dist_a: np.ndarray, tri_b: np.ndarray, tol: float):
    """Whether an edge of each triangle A strictly crosses B's plane inside B (or on its
    boundary: symmetric configurations cross exactly through edges).

    dist_a: signed distances (P, 3) of A's corners to B's plane [m].
    """
    hit = np.zeros(len(tri_a), dtype=bool)
    for start, end in ((0, 1), (1, 2), (2, 0)):
        d_start, d_end = dist_a[:, start], dist_a[:, end]
        crossing = ((d_start > tol) & (d_end < -tol)) | ((d_start < -tol) & (d_end > tol))
        if not crossing.any():
            continue
        idx = np.nonzero(crossing)[0]
        t = d_start[idx] / (d_start[idx] - d_end[idx])
        point = tri_a[idx, start] + t[:, None] * (tri_a[idx, end] - tri_a[idx, start])
        hit[idx] |= _barycentric_interior(tri_b[idx], point, -1e-12)
    return hit


def _orient2d(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _coplanar_overlap(tri_a: np.ndarray, tri_b: np.ndarray, tol: float) -> np.ndarray:
    """Whether coplanar triangles overlap in more than shared corners (2D tests)."""
    normal = np.cross(tri_a[:, 1] - tri_a[:, 0], tri_a[:, 2] - tri_a[:, 0])
    drop = np.abs(normal).argmax(axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[drop]
    a2 = np.take_along_axis(tri_a, keep[:, None, :], axis=2)
    b2 = np.take_along_axis(tri_b, keep[:, None, :], axis=2)
    area_tol = tol * np.sqrt(np.abs(_orient2d(a2[:, 0], a2[:, 1], a2[:, 2])))
    hit = np.zeros(len(tri_a), dtype=bool)
    for i0, i1 in ((0, 1), (1, 2), (2, 0)):
        for j0, j1 in ((0, 1), (1, 2), (2, 0)):
            p, q, r, s = a2[:, i0], a2[:, i1], b2[:, j0], b2[:, j1]
            o1, o2 = _orient2d(p, q, r), _orient2d(p, q, s)
            o3, o4 = _orient2d(r, s, p), _orient2d(r, s, q)
            hit |= (
                (o1 * o2 < 0)
                & (o3 * o4 < 0)
                & (np.minimum.reduce([np.abs(o1), np.abs(o2), np.abs(o3), np.abs(o4)]) > area_tol)
            )
    for outer, inner in ((b2, a2), (a2, b2)):
        centroid = inner.mean(axis=1)
        flat_outer = np.concatenate([outer, np.zeros_like(outer[..., :1])], axis=2)
        flat_c = np.concatenate([centroid, np.zeros_like(centroid[:, :1])], axis=1)
        hit |= _barycentric_interior(flat_outer, flat_c, 1e-12)
    return hit


def _pairs_intersect(tri_a: np.ndarray, tri_b: np.ndarray, tol: float) -> np.ndarray:
    """Intersection of triangle pairs that share at most one corner."""
    dist_b = _signed_distances(tri_a, tri_b)
    dist_a = _signed_distances(tri_b, tri_a)
    coplanar = (np.abs(dist_b) <= tol).all(axis=1) & (np.abs(dist_a) <= tol).all(axis=1)
    hit = np.zeros(len(tri_a), dtype=bool)
    general = ~coplanar
    separated = ((dist_b > tol).all(axis=1) | (dist_b < -tol).all(axis=1)) | (
        (dist_a > tol).all(axis=1) | (dist_a < -tol).all(axis=1)
    )
    test = np.nonzero(general & ~separated)[0]
    if len(test):
        hit[test] = _edges_cross(tri_a[test], dist_a[test], tri_b[test], tol) | _edges_cross(
            tri_b[test], dist_b[test], tri_a[test], tol
        )
    flat = np.nonzero(coplanar)[0]
    if len(flat):
        hit[flat] = _coplanar_overlap(tri_a[flat], tri_b[flat], tol)
    return hit


def _folded(vertices, faces_a, faces_b, tol: float) -> np.ndarray:
    """Faces sharing an edge that lie in one plane on the same side of it (a fold)."""
    match = faces_a[:, :, None] == faces_b[:, None, :]
    in_b = match.any(axis=2)  # which corners of a are shared
    in_a = match.any(axis=1)  # which corners of b are shared
    rows = np.arange(len(faces_a))
    opposite_a = faces_a[rows, np.argmin(in_b, axis=1)]
    opposite_b = faces_b[rows, np.argmin(in_a, axis=1)]
    shared = np.sort(np.where(in_b, faces_a, -1), axis=1)[:, 1:]
    dist = _signed_distances(vertices[faces_a], vertices[opposite_b][:, None, :])[:, 0]
    u, w = vertices[shared[:, 0]], vertices[shared[:, 1]]
    side_a = np.cross(w - u, vertices[opposite_a] - u)
    side_b = np.cross(w - u, vertices[opposite_b] - u)
    return (np.abs(dist) <= tol) & (np.einsum("pj,pj->p", side_a, side_b) > 0)


def _pairs_among(boxes: np.ndarray, among: np.ndarray, padding: float) -> np.ndarray:
    """Pairs (i, j), i < j, of overlapping boxes (n, 2, 3) [m] with i or j in the mask
    ``among`` (n,)."""
    tree = box_tree(boxes[:, 0] - padding, boxes[:, 1] + padding)
    chosen = np.nonzero(among)[0]
    query, hit = overlapping_boxes(tree, boxes[chosen, 0], boxes[chosen, 1])
    query = chosen[query]
    # a pair of two chosen faces is found from both ends: keep it once
    keep = (query != hit) & ~(among[hit] & (hit < query))
    return np.sort(np.stack([query[keep], hit[keep]], axis=1), axis=1)


def self_intersections(mesh: SurfaceMesh, among: np.ndarray | None = None) -> np.ndarray:
    """Pairs of intersecting faces, shape (K, 2) int, each sorted; empty when there are
    none.  among: optional mask (F,) of faces; only pairs with a face in it are tested
    (after a local change, the changed faces: the other pairs are as before)."""
    if mesh.n_faces < 2:
        return np.zeros((0, 2), dtype=np.int64)
    tri = mesh.triangles()
    scale = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    tol = RELATIVE_TOLERANCE * scale
    boxes = np.stack([tri.min(axis=1), tri.max(axis=1)], axis=1)
    if among is None:
        pairs = candidate_pairs(boxes, padding=tol)
    elif not np.any(among):
        return np.zeros((0, 2), dtype=np.int64)
    else:
        pairs = _pairs_among(boxes, np.asarray(among, dtype=bool), tol)
    found = []
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start : start + _CHUNK]
        fa, fb = mesh.faces[chunk[:, 0]], mesh.faces[chunk[:, 1]]
        n_shared = (fa[:, :, None] == fb[:, None, :]).any(axis=2).sum(axis=1)
        hit = np.zeros(len(chunk), dtype=bool)
        loose = np.nonzero(n_shared <= 1)[0]
        hit[loose] = _pairs_intersect(tri[chunk[loose, 0]], tri[chunk[loose, 1]], tol)
        edge = np.nonzero(n_shared == 2)[0]
        if len(edge):
            hit[edge] = _folded(mesh.vertices, fa[edge], fb[edge], tol)
        found.append(chunk[hit])
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def surfaces_intersect(first: SurfaceMesh, second: SurfaceMesh) -> np.ndarray:
    """Pairs (face of first, face of second) that intersect, shape (K, 2)."""
    tri_a, tri_b = first.triangles(), second.triangles()
    lo = np.minimum(first.vertices.min(axis=0), second.vertices.min(axis=0))
    hi = np.maximum(first.vertices.max(axis=0), second.vertices.max(axis=0))
    tol = RELATIVE_TOLERANCE * float(np.linalg.norm(hi - lo))
    boxes_a = np.stack([tri_a.min(axis=1), tri_a.max(axis=1)], axis=1)
    boxes_b = np.stack([tri_b.min(axis=1), tri_b.max(axis=1)], axis=1)
    pairs = candidate_pairs(boxes_a, boxes_b, padding=tol)
    found = []
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start : start + _CHUNK]
        hit = _pairs_intersect(tri_a[chunk[:, 0]], tri_b[chunk[:, 1]], tol)
        found.append(chunk[hit])
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
