"""A triangle strip between two closed loops (a tube segment), of minimum area.

Used when a band cut out of a thin tube (a neurite) is closed again: capping both loops
separately would cut the tube in two.  The strip is the minimum-area path through the grid
of loop positions (Fuchs, Kedem & Uselton 1977, Commun. ACM 20:693), started at the
closest pair of loop vertices, with every joining edge used by exactly two strip faces.
"""

from __future__ import annotations

import numpy as np


def _tri_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return 0.5 * float(np.linalg.norm(np.cross(b - a, c - a)))


def _strip(p: np.ndarray, q: np.ndarray) -> tuple[float, list[tuple[str, int, int]]]:
    """Minimum-area strip between open polylines p (n+1, 3) and q (m+1, 3) whose ends
    are joined (p[0]-q[0] and p[n]-q[m]).  Returns (area, steps).

    Grid cells (i, j) and (i mod n, j mod m) name the same joining edge, so a path that
    visits both (a fan over a whole loop, e.g. (0, 0) -> (n, 0)) would use that edge in
    two strip faces.  The path therefore leaves the start by a step along p and never
    returns to row j = 0 or to (1, m) (or the same with p and q exchanged); the smaller
    of both is kept."""
    n, m = len(p) - 1, len(q) - 1
    best = (np.inf, [])
    for first in (1, 2):
        allowed = np.ones((n + 1, m + 1), dtype=bool)
        if first == 1:
            allowed[2:, 0] = allowed[0, 1:] = False
            allowed[1, m] = False
        else:
            allowed[0, 2:] = allowed[1:, 0] = False
            allowed[n, 1] = False
        area, steps = _strip_path(p, q, allowed)
        if area < best[0]:
            best = (area, steps)
    return best


def _strip_path(p, q, allowed) -> tuple[float, list[tuple[str, int, int]]]:
    n, m = len(p) - 1, len(q) - 1
    cost = np.full((n + 1, m + 1), np.inf)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)
    cost[0, 0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if not allowed[i, j]:
                continue
            if i > 0:
                value = cost[i - 1, j] + _tri_area(p[i - 1], p[i], q[j])
                if value < cost[i, j]:
                    cost[i, j], move[i, j] = value, 1
            if j > 0:
                value = cost[i, j - 1] + _tri_area(p[i], q[j], q[j - 1])
                if value < cost[i, j]:
                    cost[i, j], move[i, j] = value, 2
    if not np.isfinite(cost[n, m]):
        return np.inf, []
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
