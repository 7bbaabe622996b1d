"""Explicit surface repair.  Never called implicitly: the user calls it and reads the report.

Steps, in order: merge duplicate vertices, remove degenerate and duplicated faces, make the
winding consistent, fill holes (fan triangulation of each boundary loop), orient every body
outwards.  Self-intersections and non-manifold edges are not repaired here: remesh those
(e.g. a boolean union in manifold3d, or ``tetrahedralize(..., method="tetwild")``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components

from mf_dmri.geometry.checks import DUPLICATE_RELATIVE_TOLERANCE, _degenerate_faces
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.topology import (
    directed_edges,
    duplicate_vertex_groups,
    edge_table,
    face_components,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_surface` changed (counts)."""

    vertices_merged: int
    degenerate_faces_removed: int
    duplicate_faces_removed: int
    faces_reoriented: int
    bodies_inverted: int
    holes_filled: int
    faces_added: int
    boundary_edges_left: int

    @property
    def changed(self) -> bool:
        return any(
            getattr(self, name)
            for name in self.__dataclass_fields__
            if name != "boundary_edges_left"
        )

    def summary(self) -> str:
        return ", ".join(
            f"{name.replace('_', ' ')} {getattr(self, name)}" for name in self.__dataclass_fields__
        )


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, local = np.unique(faces, return_inverse=True)
    return vertices[used], local.reshape(-1, 3)


def _merge_vertices(vertices, faces):
    diagonal = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    groups = duplicate_vertex_groups(vertices, DUPLICATE_RELATIVE_TOLERANCE * diagonal)
    target = np.arange(len(vertices))
    for group in groups:
        target[group] = group[0]
    merged = sum(len(g) - 1 for g in groups)
    vertices, faces = _compact(vertices, target[faces])
    return vertices, faces, merged


def _remove_degenerate(vertices, faces):
    degenerate = _degenerate_faces(SurfaceMesh(vertices, faces))
    keep = np.ones(len(faces), dtype=bool)
    keep[degenerate] = False
    faces = faces[keep]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    duplicates = len(faces) - len(first)
    faces = faces[np.sort(first)]
    vertices, faces = _compact(vertices, faces)
    return vertices, faces, len(degenerate), duplicates


def _consistent_winding(faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Flip faces so that neighbours across manifold edges are wound consistently."""
    edges, inverse, counts = edge_table(faces)
    rows = np.argsort(inverse, kind="stable")
    owner = inverse[rows]
    starts = np.searchsorted(owner, np.nonzero(counts == 2)[0])
    first, second = rows[starts], rows[starts + 1]
    directed = directed_edges(faces)
    same = directed[first, 0] == directed[second, 0]
    face_a, face_b = first // 3, second // 3
    n_faces = len(faces)
    relation = sparse.coo_matrix(
        (np.where(same, -1, 1), (face_a, face_b)), shape=(n_faces, n_faces)
    ).tocsr()
    relation = relation + relation.T
    sign = np.zeros(n_faces, dtype=np.int64)
    n_components, labels = connected_components(relation, directed=False)
    for component in range(n_components):
        root = int(np.argmax(labels == component))
        order, parent = breadth_first_order(relation, root, directed=False)
        sign[root] = 1
        for face in order[1:]:
            sign[face] = sign[parent[face]] * int(relation[parent[face], face])
        if (sign[order] < 0).sum() * 2 > len(order):
            sign[order] *= -1
    flip = sign < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces, int(flip.sum())


def _boundary_loops(faces: np.ndarray) -> tuple[list[list[int]], int]:
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


def _fill_holes(vertices, faces):
    loops, untraced = _boundary_loops(faces)
    new_vertices, new_faces = [vertices], [faces]
    n_vertices = len(vertices)
    for loop in loops:
        loop_arr = np.array(loop)
        if len(loop) == 3:
            new_faces.append(loop_arr[::-1][None, :])
            continue
        new_vertices.append(vertices[loop_arr].mean(axis=0)[None, :])
        centre = n_vertices
        n_vertices += 1
        fan = np.stack([np.roll(loop_arr, -1), loop_arr, np.full(len(loop), centre)], axis=1)
        new_faces.append(fan)
    added = sum(len(f) for f in new_faces[1:])
    return np.concatenate(new_vertices), np.concatenate(new_faces), len(loops), added, untraced


def _orient_outwards(vertices, faces):
    labels = face_components(faces, len(vertices))
    tri = vertices[faces] - vertices.mean(axis=0)
    per_face = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    volumes = np.bincount(labels, weights=per_face)
    inward = np.nonzero(volumes < 0)[0]
    flip = np.isin(labels, inward)
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces, len(inward)


def repair_surface(
    mesh: SurfaceMesh,
    merge_vertices: bool = True,
    fix_winding: bool = True,
    fill_holes: bool = True,
    remove_degenerate: bool = True,
) -> tuple[SurfaceMesh, RepairReport]:
    """Repair a surface explicitly and report what changed.

    mesh: surface [m].  merge_vertices: merge vertices closer than 1e-9 of the bounding-box
    diagonal.  remove_degenerate: drop zero-area and duplicated faces.  fix_winding: make
    neighbouring faces consistent and every closed body outward-wound.  fill_holes: close
    each boundary loop with a fan of triangles (around the loop's centroid).
    Returns the repaired surface and a :class:`RepairReport`; run
    :func:`~mf_dmri.geometry.validate_surface` on the result before using it.
    """
    vertices, faces = np.array(mesh.vertices), np.array(mesh.faces)
    merged = degenerate = duplicates = reoriented = inverted = 0
    filled = added = unfilled = 0
    if merge_vertices:
        vertices, faces, merged = _merge_vertices(vertices, faces)
    if remove_degenerate:
        vertices, faces, degenerate, duplicates = _remove_degenerate(vertices, faces)
    if fix_winding:
        faces, reoriented = _consistent_winding(faces)
    if fill_holes:
        vertices, faces, filled, added, unfilled = _fill_holes(vertices, faces)
    if fix_winding:
        faces, inverted = _orient_outwards(vertices, faces)
    report = RepairReport(
        merged, degenerate, duplicates, reoriented, inverted, filled, added, unfilled
    )
    logger.info("repair_surface: %s", report.summary())
    return SurfaceMesh(vertices, faces), report
