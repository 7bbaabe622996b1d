"""Surfaces built from a sequence of vertex rings (circles around a centreline).

Each ring has its own vertex count, chosen from its circumference and a target edge length,
and consecutive rings are stitched by angle, so the triangles stay close to equilateral
(good for tetrahedral meshing).  A ring with one vertex is a pole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.surface import SurfaceMesh


@dataclass(frozen=True, eq=False)
class Ring:
    """centre (3,) [m], radius [m], frame: two orthonormal vectors (2, 3) spanning the ring
    plane with cross(frame[0], frame[1]) along the direction of travel."""

    centre: np.ndarray
    radius: float
    frame: np.ndarray


def ring_count(radius: float, edge_length: float, minimum: int = 3) -> int:
    """Number of vertices giving edges of about ``edge_length`` [m] on a circle [m]."""
    if radius <= 0:
        return 1
    return max(minimum, int(round(2 * np.pi * radius / edge_length)))


def _stitch(
    count_a: int, angles_a: np.ndarray, count_b: int, angles_b: np.ndarray, base_a: int, base_b: int
) -> list[tuple[int, int, int]]:
    """Triangles joining ring A (before) and ring B (after), counter-clockwise outward."""
    if count_a == 1:
        return [(base_a, base_b + (j + 1) % count_b, base_b + j) for j in range(count_b)]
    if count_b == 1:
        return [(base_a + i, base_a + (i + 1) % count_a, base_b) for i in range(count_a)]
    extended_a = np.append(angles_a, angles_a[0] + 2 * np.pi)
    extended_b = np.append(angles_b, angles_b[0] + 2 * np.pi)
    triangles, i, j = [], 0, 0
    while i < count_a or j < count_b:
        advance_a = j >= count_b or (i < count_a and extended_a[i + 1] <= extended_b[j + 1])
        a0, b0 = base_a + i % count_a, base_b + j % count_b
        if advance_a:
            triangles.append((a0, base_a + (i + 1) % count_a, b0))
            i += 1
        else:
            triangles.append((a0, base_b + (j + 1) % count_b, b0))
            j += 1
    return triangles


def rings_to_surface(
    rings: list[Ring], edge_length: float, counts: list[int] | None = None
) -> SurfaceMesh:
    """Stitch rings (first and last of radius 0: poles) into a closed outward surface.

    edge_length: target edge length [m] used for the vertex count of each ring (unless
    ``counts`` gives them).
    """
    vertices, triangles, previous = [], [], None
    n_vertices = 0
    for k, ring in enumerate(rings):
        count = counts[k] if counts is not None else ring_count(ring.radius, edge_length)
        if count == 1:
            angles = np.zeros(1)
            points = ring.centre[None, :]
        else:
            angles = (np.arange(count) + 0.5 * (k % 2)) * (2 * np.pi / count)
            angles = np.mod(angles, 2 * np.pi)
            order = np.argsort(angles)
            angles = angles[order]
            points = ring.centre + ring.radius * (
                np.cos(angles)[:, None] * ring.frame[0] + np.sin(angles)[:, None] * ring.frame[1]
            )
        if previous is not None:
            triangles += _stitch(previous[0], previous[1], count, angles, previous[2], n_vertices)
        vertices.append(points)
        previous = (count, angles, n_vertices)
        n_vertices += count
    mesh = SurfaceMesh(np.concatenate(vertices), np.array(triangles, dtype=np.int64))
    return mesh if mesh.signed_volume() > 0 else mesh.flipped()


def perpendicular_frame(tangent: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Orthonormal (2, 3) frame perpendicular to ``tangent``, first axis nearest ``reference``."""
    tangent = tangent / np.linalg.norm(tangent)
    first = reference - np.dot(reference, tangent) * tangent
    norm = np.linalg.norm(first)
    if norm < 1e-8:
        raise ValueError("reference direction is parallel to the tangent")
    first = first / norm
    return np.stack([first, np.cross(tangent, first)])


def disk_rings(
    centre: np.ndarray, radius: float, frame: np.ndarray, edge_length: float, outward_first: bool
) -> list[Ring]:
    """Concentric rings of a flat disk cap, excluding the rim; pole included."""
    n_inner = max(1, int(np.ceil(radius / edge_length)))
    radii = radius * np.arange(n_inner) / n_inner
    rings = [Ring(centre, float(r), frame) for r in radii]
    return rings[::-1] if outward_first else rings
