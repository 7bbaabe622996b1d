"""Closing holes in a triangle surface: boundary loops, minimum-area triangulation, and
refinement of the new patch to the density of the surrounding surface.

A hole bounded by one loop is triangulated by the minimum-area triangulation of its
(possibly non-planar) boundary polygon, found by dynamic programming over sub-polygons
(Barequet & Sharir 1995, Comput. Aided Geom. Des. 12:207; Liepa 2003, Eurographics SGP,
"Filling holes in meshes").  For a planar simple polygon every triangle outside the polygon
would overlap another, so the minimum-area triangulation stays inside it.  Several loops
that bound one hole (e.g. both ends of a tube cut out of a neurite) are first joined into
one polygon by bridges between their closest vertices.  The patch is then refined
(Liepa's centroid splits with Delaunay edge flips) until its triangles match the edge
length of the loop, and its new vertices are relaxed by umbrella smoothing with the
boundary fixed.
"""

from __future__ import annotations

import numpy as np

from mf_dmri.geometry.topology import directed_edges, edge_table

#: largest loop (number of vertices) triangulated by the O(n^3) dynamic programme
MAX_LOOP_VERTICES = 1500


def boundary_loops(faces: np.ndarray) -> tuple[list[list[int]], int]:
    """Closed loops of boundary edges, directed as in their faces, and the number of
    boundary edges left on open chains (a boundary that does not close)."""
    directed = directed_edges(faces)
    _, inverse, counts = edge_table(faces)
    boundary = [tuple(map(int, e)) for e in directed[counts[inverse] == 1]]
    outgoing: dict[int, list[int]] = {}
    for start, end in boundary:
        outgoing.setdefault(start, []).append(end)
    loops, left = [], 0
    for start in list(outgoing):
        while outgoing.get(start):
            loop, vertex = [start], outgoing[start].pop()
            while vertex != start and outgoing.get(vertex):
                loop.append(vertex)
                vertex = outgoing[vertex].pop()
            if vertex == start:
                simple = _split_at_repeats(loop)
                loops += [part for part in simple if len(part) >= 3]
                left += sum(len(part) for part in simple if len(part) < 3)
            else:
                left += len(loop)
    return loops, left


def _split_at_repeats(loop: list[int]) -> list[list[int]]:
    """Split a closed walk that passes a vertex more than once into simple loops."""
    parts, stack, position = [], [], {}
    for vertex in loop:
        if vertex in position:
            cut = position[vertex]
            parts.append(stack[cut:])
            for dropped in stack[cut + 1 :]:
                del position[dropped]
            stack = stack[: cut + 1]
        else:
            position[vertex] = len(stack)
            stack.append(vertex)
    parts.append(stack)
    return parts


def bridge_loops(vertices: np.ndarray, loops: list[list[int]]) -> list[int]:
    """One closed polygon through all ``loops`` (each directed as a hole boundary): every
    further loop is spliced in at its vertex closest to the polygon built so far (the
    bridge edge is walked both ways)."""
    polygon = list(loops[0])
    for loop in loops[1:]:
        shared = [(i, loop.index(v)) for i, v in enumerate(polygon) if v in loop]
        if shared:  # the loops touch at a vertex: splice there, without a bridge
            i, j = shared[0]
            rotated = loop[j:] + loop[:j]
            polygon = polygon[:i] + rotated + polygon[i:]
            continue
        ours, theirs = vertices[polygon], vertices[loop]
        distance = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2)
        i, j = np.unravel_index(np.argmin(distance), distance.shape)
        rotated = loop[j:] + loop[:j]
        polygon = polygon[: i + 1] + rotated + [rotated[0]] + polygon[i:]
    return polygon


def _area(points: np.ndarray, i, m, j) -> np.ndarray:
    cross = np.cross(points[m] - points[i], points[j] - points[i])
    return 0.5 * np.linalg.norm(cross, axis=-1)


def min_area_triangulation(
    points: np.ndarray, ids: np.ndarray | None = None, blocked: np.ndarray | None = None
) -> np.ndarray:
    """Triangles (n - 2, 3) of local indices 0..n-1 minimising the total area of a closed
    polygon ``points`` (n, 3) [m], wound like the polygon.  Vertices that repeat (bridges)
    must not share a triangle: ``ids`` (n,) names the vertex of each position.
    ``blocked`` (n, n) bool: chords that must not be used (edges that exist already)."""
    n = len(points)
    ids = np.arange(n) if ids is None else np.asarray(ids)
    weight = np.zeros((n, n))
    if blocked is None:
        blocked = np.zeros((n, n), dtype=bool)
    choice = np.zeros((n, n), dtype=np.int64)
    for gap in range(2, n):
        i = np.arange(n - gap)
        j = i + gap
        m = i[:, None] + np.arange(1, gap)[None, :]
        cost = (
            weight[i[:, None], m] + weight[m, j[:, None]] + _area(points, i[:, None], m, j[:, None])
        )
        bad = (ids[m] == ids[i][:, None]) | (ids[m] == ids[j][:, None])
        bad |= (ids[i] == ids[j])[:, None]
        if gap < n - 1:
            bad |= blocked[i, j][:, None]
        cost = np.where(bad, np.inf, cost)
        best = np.argmin(cost, axis=1)
        weight[i, j] = cost[np.arange(len(i)), best]
        choice[i, j] = m[np.arange(len(i)), best]
    if not np.isfinite(weight[0, n - 1]):
        return np.zeros((0, 3), dtype=np.int64)
    triangles, stack = [], [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        m = int(choice[i, j])
        triangles.append((i, m, j))
        stack += [(i, m), (m, j)]
    return np.array(triangles, dtype=np.int64)


def fill_hole(
    vertices: np.ndarray,
    loops: list[list[int]],
    scale: np.ndarray,
    neighbours: dict[int, set[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """New vertices (k, 3) [m] and faces (f, 3) closing the hole bounded by ``loops``
    (directed as boundary edges of the surrounding faces); new vertex indices start at
    ``len(vertices)``.  ``scale`` (V,) [m]: target edge length at each old vertex.
    ``neighbours``: the vertices joined to each vertex by an existing edge (never
    duplicated by the fill).  None when the polygon is too long for the dynamic programme
    or cannot be triangulated."""
    polygon = bridge_loops(vertices, loops) if len(loops) > 1 else list(loops[0])
    if len(polygon) > MAX_LOOP_VERTICES:
        return None
    ids = np.asarray(polygon)
    blocked = np.zeros((len(ids), len(ids)), dtype=bool)
    edge_ids = {frozenset(e) for e in zip(polygon, polygon[1:] + polygon[:1])}
    for k in range(len(ids)):  # chords that repeat an edge of the polygon itself
        for m in range(k + 2, len(ids)):
            if frozenset((polygon[k], polygon[m])) in edge_ids:
                blocked[k, m] = blocked[m, k] = True
    if neighbours:
        position: dict[int, list[int]] = {}
        for k, vertex in enumerate(polygon):
            position.setdefault(vertex, []).append(k)
        for k, vertex in enumerate(polygon):
            for other in neighbours.get(vertex, ()):
                for m in position.get(other, ()):
                    if abs(m - k) > 1:
                        blocked[k, m] = blocked[m, k] = True
    local = min_area_triangulation(vertices[ids], ids, blocked)
    if len(local) == 0:
        return None
    faces = ids[local][:, ::-1]  # the hole's faces run against the boundary direction
    return refine_patch(vertices, faces, scale, neighbours)


def refine_patch(
    vertices: np.ndarray,
    faces: np.ndarray,
    scale: np.ndarray,
    neighbours: dict[int, set[int]] | None = None,
    max_rounds: int = 8,
    smooth: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Split patch triangles at their centroid while they are coarser than the local
    ``scale`` (Liepa 2003 with density factor sqrt 2), flip patch edges to the Delaunay
    condition (never onto an edge in ``neighbours``, the existing surface), and smooth the
    new vertices (unless not ``smooth``: then they stay on the patch's faces).  Returns
    (new vertices, patch faces)."""
    # work on the patch's own vertices (local numbering, in the order of the global one)
    used = np.unique(faces)
    local = {int(v): k for k, v in enumerate(used)}
    outside = set()
    for a in used.tolist():
        for b in (neighbours or {}).get(a, ()):
            if b in local:
                outside.add((min(local[a], local[b]), max(local[a], local[b])))
    points = [*vertices[used]]
    sizes = list(scale[used])
    n_old = len(used)
    faces = [tuple(local[v] for v in f) for f in np.asarray(faces).tolist()]
    for _ in range(max_rounds):
        split = []
        for index, (a, b, c) in enumerate(faces):
            centroid = (points[a] + points[b] + points[c]) / 3
            sigma = (sizes[a] + sizes[b] + sizes[c]) / 3
            if all(
                np.sqrt(2) * np.linalg.norm(centroid - points[v]) > max(sigma, sizes[v])
                for v in (a, b, c)
            ):
                split.append((index, centroid, sigma))
        if not split:
            break
        for index, centroid, sigma in split:
            a, b, c = faces[index]
            new = len(points)
            points.append(centroid)
            sizes.append(sigma)
            faces[index] = (a, b, new)
            faces += [(b, c, new), (c, a, new)]
        faces = _delaunay_flips(points, faces, outside)
    faces = _delaunay_flips(points, faces, outside)
    points_array = np.array(points)
    if smooth:
        _smooth(points_array, np.array(faces), n_old)
    to_global = np.concatenate([used, len(vertices) + np.arange(len(points) - n_old)])
    return points_array[n_old:], to_global[np.array(faces, dtype=np.int64).reshape(-1, 3)]


def _delaunay_flips(points: list, faces: list, outside: set, max_sweeps: int = 10) -> list:
    """Flip interior patch edges whose two opposite angles sum above pi, unless the new
    edge exists in the patch or in ``outside``."""
    for _ in range(max_sweeps):
        owner: dict[tuple[int, int], list[int]] = {}
        for index, face in enumerate(faces):
            for k in range(3):
                key = tuple(sorted((face[k], face[(k + 1) % 3])))
                owner.setdefault(key, []).append(index)
        existing = set(owner) | outside
        flipped, touched = 0, set()
        for (u, v), pair in owner.items():
            if len(pair) != 2 or touched & set(pair):
                continue
            f, g = faces[pair[0]], faces[pair[1]]
            p = next(x for x in f if x not in (u, v))
            q = next(x for x in g if x not in (u, v))
            if tuple(sorted((p, q))) in existing or p == q:
                continue
            if _angle(points, p, u, v) + _angle(points, q, u, v) <= np.pi + 1e-9:
                continue
            # keep the winding: f runs u->v or v->u
            k = f.index(p)
            first, second = f[(k + 1) % 3], f[(k + 2) % 3]
            faces[pair[0]] = (p, first, q)
            faces[pair[1]] = (p, q, second)
            existing.add(tuple(sorted((p, q))))
            touched |= set(pair)
            flipped += 1
        if not flipped:
            break
    return faces


def _angle(points: list, apex: int, u: int, v: int) -> float:
    a, b = points[u] - points[apex], points[v] - points[apex]
    cosine = a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), np.finfo(float).tiny)
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _smooth(points: np.ndarray, faces: np.ndarray, n_fixed: int, rounds: int = 10) -> None:
    """Umbrella (uniform Laplacian) smoothing of vertices >= n_fixed, in place."""
    if len(points) == n_fixed or len(faces) == 0:
        return
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    moving = edges[:, 0] >= n_fixed
    start, end = edges[moving, 0], edges[moving, 1]
    count = np.bincount(start, minlength=len(points))
    movable = np.nonzero(count > 0)[0]
    for _ in range(rounds):
        total = np.zeros_like(points)
        np.add.at(total, start, points[end])
        points[movable] = total[movable] / count[movable, None]
