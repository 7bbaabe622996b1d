"""Triangulation of a simple polygon (a 2-D cross-section) for the planar eigenbasis.

The boundary is sampled at spacing <= ``mesh_size``, the interior filled with a hexagonal
lattice of that spacing (points closer than half a spacing to the boundary dropped), and the
points Delaunay-triangulated (scipy); triangles outside the polygon are removed.  The result is
checked to conform: its area equals the polygon's (shoelace) and every boundary segment is a
triangle edge; a failure raises rather than returning a wrong domain.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.path import Path
from scipy.spatial import Delaunay


def polygon_area(vertices: np.ndarray) -> float:
    """Unsigned area of a simple polygon (shoelace) [m^2]."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _checked_polygon(vertices) -> np.ndarray:
    poly = np.asarray(vertices, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
        raise ValueError(f"vertices must be (P >= 3, 2) polygon corners [m], got {poly.shape}")
    if not np.isfinite(poly).all():
        raise ValueError("polygon vertices contain NaN or infinite values")
    if np.allclose(poly[0], poly[-1]):
        raise ValueError("do not repeat the first vertex at the end: the polygon closes itself")
    if _self_intersects(poly):
        raise ValueError("the polygon intersects itself; pass a simple polygon")
    if polygon_area(poly) <= 0:
        raise ValueError("the polygon has zero area")
    return poly


def _self_intersects(poly: np.ndarray) -> bool:
    """True if two non-adjacent edges cross or touch (vectorised O(P^2) test)."""
    start, end = poly, np.roll(poly, -1, axis=0)
    count = poly.shape[0]

    def orient(a, b, c):
        return np.sign(
            (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        )

    p1, p2 = start[:, None, :], end[:, None, :]
    q1, q2 = start[None, :, :], end[None, :, :]
    crossing = (orient(p1, p2, q1) * orient(p1, p2, q2) <= 0) & (
        orient(q1, q2, p1) * orient(q1, q2, p2) <= 0
    )
    index = np.arange(count)
    gap = np.abs(index[:, None] - index[None, :])
    adjacent = (gap <= 1) | (gap == count - 1)
    return bool((crossing & ~adjacent).any())


def _boundary_points(poly: np.ndarray, mesh_size: float) -> np.ndarray:
    points = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        pieces = max(1, math.ceil(np.linalg.norm(b - a) / mesh_size))
        fractions = np.arange(pieces)[:, None] / pieces
        points.append(a + fractions * (b - a))
    return np.concatenate(points)


def _distance_to_segments(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    direction = end - start
    length2 = np.einsum("ij,ij->i", direction, direction)
    rel = points[:, None, :] - start[None, :, :]
    t = np.clip(np.einsum("pij,ij->pi", rel, direction) / length2, 0.0, 1.0)
    nearest = start[None] + t[..., None] * direction[None]
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(axis=1)


def _interior_points(poly: np.ndarray, boundary: np.ndarray, mesh_size: float) -> np.ndarray:
    low, high = poly.min(axis=0), poly.max(axis=0)
    row_step = mesh_size * math.sqrt(3.0) / 2.0
    rows = np.arange(low[1] + row_step / 2, high[1], row_step)
    lattice = []
    for i, y in enumerate(rows):
        xs = np.arange(low[0] + (0.5 * mesh_size if i % 2 else 0.0), high[0], mesh_size)
        lattice.append(np.column_stack([xs, np.full(xs.size, y)]))
    candidates = np.concatenate(lattice) if lattice else np.zeros((0, 2))
    if candidates.size == 0:
        return candidates
    candidates = candidates[Path(poly).contains_points(candidates)]
    keep = np.ones(len(candidates), dtype=bool)
    start, end = boundary, np.roll(boundary, -1, axis=0)
    for block in range(0, len(candidates), 2000):
        chunk = candidates[block : block + 2000]
        keep[block : block + 2000] = _distance_to_segments(chunk, start, end) >= 0.5 * mesh_size
    return candidates[keep]


def triangulate_polygon(vertices, mesh_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of a simple polygon.

    Args:
        vertices: (P, 2) polygon corners in order [m] (either orientation, not closed).
        mesh_size: target edge length h [m].

    Returns:
        nodes (N, 2) [m] and triangles (E, 3) node indices.
    """
    poly = _checked_polygon(vertices)
    h = float(mesh_size)
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"mesh_size must be a positive length [m], got {mesh_size}")
    boundary = _boundary_points(poly, h)
    points = np.concatenate([boundary, _interior_points(poly, boundary, h)])
    triangles = Delaunay(points).simplices
    centroids = points[triangles].mean(axis=1)
    triangles = triangles[Path(poly).contains_points(centroids)]
    _check_conforming(poly, points, triangles, len(boundary))
    used, renumbered = np.unique(triangles, return_inverse=True)
    return points[used], renumbered.reshape(triangles.shape).astype(np.int64)


def _check_conforming(poly, points, triangles, num_boundary: int) -> None:
    edges = points[triangles[:, 1:]] - points[triangles[:, :1]]
    area = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]).sum()
    target = polygon_area(poly)
    mesh_edges = {
        tuple(sorted(e)) for t in triangles for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))
    }
    missing = sum(
        (min(i, (i + 1) % num_boundary), max(i, (i + 1) % num_boundary)) not in mesh_edges
        for i in range(num_boundary)
    )
    if abs(area - target) > 1e-9 * target or missing:
        raise ValueError(
            f"the triangulation does not conform to the polygon (area {area:.6g} "
            f"vs {target:.6g} m^2, {missing} boundary segments lost); use a "
            "smaller mesh_size or pass your own triangle mesh"
        )
