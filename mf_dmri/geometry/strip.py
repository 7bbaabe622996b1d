"""A triangle strip between two closed loops (a tube segment), of minimum area.

Used when a band cut out of a thin tube (a neurite) is closed again: capping both loops
separately would cut the tube in two.  The strip is the minimum-area path through the grid
of loop positions (Fuchs, Kedem & Uselton 1977, Commun. ACM 20:693), tried with both
relative directions of the loops; the one of smaller area is kept.
"""

from __future__ import annotations

import numpy as np


def _tri_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return 0.5 * float(np.linalg.norm(np.cross(b - a, c - a)))


def _strip(p: np.ndarray, q: np.ndarray) -> tuple[float, list[tuple[str, int, int]]]:
    """Minimum-area strip between open polylines p (n+1, 3) and q (m+1, 3) whose ends
    are joined (p[0]-q[0] and p[n]-q[m]).  Returns (area, steps)."""
    n, m = len(p) - 1, len(q) - 1
    cost = np.full((n + 1, m + 1), np.inf)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)
    cost[0, 0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if i > 0:
                value = cost[i - 1, j] + _tri_area(p[i - 1], p[i], q[j])
                if value < cost[i, j]:
                    cost[i, j], move[i, j] = value, 1
            if j > 0:
                value = cost[i, j - 1] + _tri_area(p[i], q[j], q[j - 1])
                if value < cost[i, j]:
                    cost[i, j], move[i, j] = value, 2
    steps, i, j = [], n, m
    while i > 0 or j > 0:
        if move[i, j] == 1:
            steps.append(("p", i, j))
            i -= 1
        else:
            steps.append(("q", i, j))
            j -= 1
    return float(cost[n, m]), steps[::-1]


def strip_between(vertices: np.ndarray, first: list[int], second: list[int]) -> np.ndarray:
    """Faces (F, 3) joining loop ``first`` to loop ``second`` (vertex indices, each
    directed as the boundary edges of the surrounding faces) into a tube segment whose
    faces traverse every loop edge against its direction."""
    a, b = np.asarray(first), np.asarray(second)[::-1]
    distance = np.linalg.norm(vertices[a][:, None] - vertices[b][None, :], axis=2)
    i0, j0 = np.unravel_index(np.argmin(distance), distance.shape)
    pa, pb = np.roll(a, -i0), np.roll(b, -j0)
    pa, pb = np.append(pa, pa[0]), np.append(pb, pb[0])
    _, steps = _strip(vertices[pa], vertices[pb])
    faces = []
    for kind, i, j in steps:
        if kind == "p":
            faces.append((pa[i - 1], pa[i], pb[j]))
        else:
            faces.append((pa[i], pb[j], pb[j - 1]))
    faces = np.array(faces, dtype=np.int64)
    # the strip must run each edge of ``first`` backwards
    edge = (a[0], a[1])
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if np.any((directed[:, 0] == edge[0]) & (directed[:, 1] == edge[1])):
        faces = faces[:, ::-1]
    return faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])]
